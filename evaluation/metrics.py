"""Pure metrics; each returns the mean and the per-example scores so reports can list failures."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MetricResult:
    """A metric's mean ``score`` and one score per example (NaN where it does not apply)."""

    score: float
    individual_scores: list[float]


def _mean(scores: list[float]) -> MetricResult:
    applicable = [s for s in scores if not np.isnan(s)]
    return MetricResult(float(np.mean(applicable)) if applicable else float("nan"), scores)


def hit_rate(retrieved: Sequence[Sequence[str]], relevant: Sequence[Sequence[str]]) -> MetricResult:
    """1 if any relevant document id is among the retrieved ids, else 0 (per question)."""
    return _mean(
        [
            float(any(doc in set(rel) for doc in ret)) if rel else float("nan")
            for ret, rel in zip(retrieved, relevant, strict=True)
        ]
    )


def reciprocal_rank(
    retrieved: Sequence[Sequence[str]], relevant: Sequence[Sequence[str]]
) -> MetricResult:
    """1/rank of the first relevant document id (0 if none); the mean is MRR."""
    scores = []
    for ret, rel in zip(retrieved, relevant, strict=True):
        if not rel:
            scores.append(float("nan"))
            continue
        wanted = set(rel)
        # several chunks of one document may be retrieved: rank documents, not chunks
        ranked = list(dict.fromkeys(ret))
        scores.append(next((1.0 / (i + 1) for i, d in enumerate(ranked) if d in wanted), 0.0))
    return _mean(scores)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def answer_contains_reference(
    answers: Sequence[str], references: Sequence[Sequence[str]]
) -> MetricResult:
    """1 if a normalised reference answer appears in the normalised answer (extractive QA)."""
    scores = []
    for answer, refs in zip(answers, references, strict=True):
        if not refs:
            scores.append(float("nan"))
            continue
        normalized = f" {normalize_answer(answer)} "
        scores.append(float(any(f" {normalize_answer(r)} " in normalized for r in refs)))
    return _mean(scores)


def latency_percentiles(milliseconds: Sequence[float]) -> dict[str, float]:
    """p50, p95 and p99 of per-question latencies, in milliseconds."""
    values = np.asarray(milliseconds, dtype=float)
    return {f"latency_p{p}_ms": float(np.percentile(values, p)) for p in (50, 95, 99)}
