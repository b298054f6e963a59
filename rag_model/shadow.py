"""Shadow comparisons, pure: a live answer against the shadow version's answer to one question.

Source overlap is measured on document ids (two versions chunk differently, so chunk ids of
the same passage differ): Jaccard of the two sets and whether the first sources agree. Answer
similarity is SQuAD's token F1 (lower case, punctuation, articles and citation markers
dropped): cheap, no model, and 1.0 for the same answer worded the same.
"""

from __future__ import annotations

import re
import statistics
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_CITATION = re.compile(r"\[\d+\]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def tokens(text: str) -> list[str]:
    """SQuAD-normalised tokens of an answer (citation markers removed)."""
    text = _CITATION.sub(" ", text.lower()).translate(_PUNCTUATION)
    return _ARTICLES.sub(" ", text).split()


def token_f1(one: str, other: str) -> float:
    """Token F1 of two answers: 1.0 when they say the same words, 0.0 when none are shared."""
    a, b = tokens(one), tokens(other)
    if not a or not b:
        return float(a == b)
    common = sum((Counter(a) & Counter(b)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(a), common / len(b)
    return 2 * precision * recall / (precision + recall)


def jaccard(one: Iterable[str], other: Iterable[str]) -> float:
    """|A ∩ B| / |A ∪ B| of two sets of ids; 1.0 when both are empty."""
    a, b = set(one), set(other)
    return 1.0 if not a and not b else len(a & b) / len(a | b)


def compare(
    live_documents: Sequence[str],
    shadow_documents: Sequence[str],
    live_answer: str,
    shadow_answer: str,
) -> dict[str, float]:
    """The three agreement measures of one pair (documents in rank order)."""
    top1 = bool(live_documents and shadow_documents and live_documents[0] == shadow_documents[0])
    if not live_documents and not shadow_documents:
        top1 = True
    return {
        "jaccard": jaccard(live_documents, shadow_documents),
        "top1_agreement": float(top1),
        "answer_f1": token_f1(live_answer, shadow_answer),
    }


@dataclass(frozen=True)
class ShadowSummary:
    """Pairs of one (model, live version, shadow version), summarised."""

    model: str
    live_version: str
    shadow_version: str
    pairs: int
    jaccard: float
    top1_agreement: float
    answer_f1: float
    live_p50_ms: float
    live_p99_ms: float
    shadow_p50_ms: float
    shadow_p99_ms: float

    def as_row(self) -> dict[str, Any]:
        return dict(self.__dict__)


def summarise(pairs: Sequence[Mapping[str, Any]]) -> list[ShadowSummary]:
    """One summary per (model, live version, shadow version) of recorded pair records."""
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for pair in pairs:
        key = (str(pair["model"]), str(pair["live_version"]), str(pair["shadow_version"]))
        groups.setdefault(key, []).append(pair)
    return [
        ShadowSummary(
            model=model,
            live_version=live,
            shadow_version=shadow,
            pairs=len(group),
            jaccard=_mean(group, "jaccard"),
            top1_agreement=_mean(group, "top1_agreement"),
            answer_f1=_mean(group, "answer_f1"),
            live_p50_ms=_quantile(group, "live_ms", 0.5),
            live_p99_ms=_quantile(group, "live_ms", 0.99),
            shadow_p50_ms=_quantile(group, "shadow_ms", 0.5),
            shadow_p99_ms=_quantile(group, "shadow_ms", 0.99),
        )
        for (model, live, shadow), group in sorted(groups.items())
    ]


def _mean(group: Sequence[Mapping[str, Any]], name: str) -> float:
    return round(statistics.fmean(float(pair[name]) for pair in group), 4)


def _quantile(group: Sequence[Mapping[str, Any]], name: str, q: float) -> float:
    values = sorted(float(pair[name]) for pair in group)
    index = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return round(values[index], 1)
