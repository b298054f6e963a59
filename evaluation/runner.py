"""Run an eval set through any answer function and collect metrics and per-question rows."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from evaluation.dataset import EvalExample
from evaluation.metrics import (
    answer_contains_reference,
    hit_rate,
    latency_percentiles,
    reciprocal_rank,
)

# question -> (answer text, retrieved document ids in rank order)
AnswerFn = Callable[[str], tuple[str, list[str]]]


@dataclass(frozen=True)
class EvalResult:
    """Aggregate metrics (MLflow metric names) and one row per question."""

    metrics: dict[str, float]
    rows: list[dict[str, Any]]


def evaluate(answer_fn: AnswerFn, examples: Sequence[EvalExample], k: int) -> EvalResult:
    """Answer every example and score retrieval (document level) and answers.

    Metric names carry k where it matters: ``hit_rate_at_4``, ``mrr_at_4``.
    """
    answers, retrieved, latencies = [], [], []
    for example in examples:
        started = time.perf_counter()
        answer, document_ids = answer_fn(example.question)
        latencies.append((time.perf_counter() - started) * 1000)
        answers.append(answer)
        retrieved.append(document_ids[:k])
    relevant = [e.relevant_ids for e in examples]
    hits = hit_rate(retrieved, relevant)
    ranks = reciprocal_rank(retrieved, relevant)
    contains = answer_contains_reference(answers, [e.reference_answers for e in examples])
    metrics = {
        f"hit_rate_at_{k}": hits.score,
        f"mrr_at_{k}": ranks.score,
        "answer_contains_reference": contains.score,
        "questions": float(len(examples)),
        **latency_percentiles(latencies),
    }
    rows = [
        {
            "id": example.id,
            "question": example.question,
            "answer": answer,
            "retrieved_ids": ids,
            "relevant_ids": example.relevant_ids,
            "reference_answers": example.reference_answers,
            "hit": hit,
            "reciprocal_rank": rank,
            "contains_reference": contained,
            "latency_ms": round(latency, 3),
        }
        for example, answer, ids, hit, rank, contained, latency in zip(
            examples,
            answers,
            retrieved,
            hits.individual_scores,
            ranks.individual_scores,
            contains.individual_scores,
            latencies,
            strict=True,
        )
    ]
    return EvalResult(metrics=metrics, rows=rows)
