"""Small metrics no library computes the way we need: SQuAD containment and latency percentiles."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

import numpy as np

_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def contains_reference(answer: str, references: Sequence[str]) -> float:
    """1.0 if a normalised reference appears in the normalised answer, 0.0 if not, NaN if none.

    Extractive answers are whole sentences, so SQuAD's exact match would call every one wrong;
    containment asks whether the answer says the reference at all.
    """
    if not references:
        return float("nan")
    normalized = f" {normalize_answer(answer)} "
    return float(any(f" {normalize_answer(r)} " in normalized for r in references))


def latency_percentiles(milliseconds: Sequence[float]) -> dict[str, float]:
    """p50, p95 and p99 of per-question latencies, in milliseconds."""
    values = np.asarray(milliseconds, dtype=float)
    return {f"latency_p{p}_ms": float(np.percentile(values, p)) for p in (50, 95, 99)}
