"""What an evaluation report shows, as plain data: the renderers (HTML, Markdown, JSON) read it.

Kept free of MLflow so reports can be rendered and tested without a tracking store; the code
that gathers the baselines from the registry lives in ``experiments``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

# the metrics shown first, in this order, when present (k-suffixed names are matched by prefix)
HEADLINE_PREFIXES = (
    "hit_rate_at_",
    "recall_at_",
    "mrr_at_",
    "ndcg_at_10",
    "map_at_10",
    "context_recall",
    "context_precision",
    "rouge_l",
    "exact_match",
    "semantic_similarity",
    "faithfulness",
    "answer_relevancy",
    "latency_p50_ms",
    "latency_p95_ms",
)
LOWER_IS_BETTER = ("latency_", "build_seconds", "index_bytes")


@dataclass(frozen=True)
class VersionPoint:
    """One registered version's evaluation on a dataset: a point of the trend plot."""

    version: str
    metrics: dict[str, float]
    dataset_digest: str = ""
    run_id: str = ""


@dataclass(frozen=True)
class Baseline:
    """A version this one is compared with, e.g. ``label="production"``."""

    label: str
    version: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class RetrievedSource:
    """One retrieved chunk as a report lists it."""

    document_id: str
    text: str
    score: float
    relevant: bool


@dataclass(frozen=True)
class QuestionRow:
    """One question of the worst-questions table."""

    id: str
    question: str
    answer: str
    reference_answers: list[str]
    relevant_ids: list[str]
    sources: list[RetrievedSource]
    scores: dict[str, float]  # per-question metric values (NaN where not applicable)


@dataclass(frozen=True)
class ReportData:
    """Everything one version's evaluation report shows.

    ``metrics`` holds every aggregate metric; ``baselines`` the versions to compare with
    (production, previous version on the same dataset); ``trend`` the same-dataset versions in
    version order, this one included; ``recall_curve`` maps n -> recall@n (document level).
    """

    model_name: str
    version: str | None  # None while not registered (e.g. a sweep child)
    run_id: str
    created: str  # ISO 8601 time of the evaluation
    config: dict[str, Any]
    dataset: dict[str, Any]  # name, source, digest, questions
    metrics: dict[str, float]
    baselines: list[Baseline] = field(default_factory=list)
    trend: list[VersionPoint] = field(default_factory=list)
    recall_curve: dict[int, float] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    worst: list[QuestionRow] = field(default_factory=list)

    @property
    def title(self) -> str:
        version = f"version {self.version}" if self.version else f"run {self.run_id[:8]}"
        return f"{self.model_name} {version}"

    def headline(self) -> list[str]:
        """The headline metric names present in ``metrics``, in display order."""
        names = []
        for prefix in HEADLINE_PREFIXES:
            names += sorted(n for n in self.metrics if n.startswith(prefix) and n not in names)
        return names

    def deltas(self) -> dict[str, dict[str, float]]:
        """``{baseline label: {metric: this - baseline}}`` for metrics both have."""
        return {
            baseline.label: {
                name: self.metrics[name] - baseline.metrics[name]
                for name in self.headline()
                if name in baseline.metrics
                and not math.isnan(self.metrics[name])
                and not math.isnan(baseline.metrics[name])
            }
            for baseline in self.baselines
        }

    def to_json_dict(self) -> dict[str, Any]:
        """The metrics JSON written beside the report: data, headline names and deltas."""
        data = asdict(self)
        data["title"] = self.title
        data["headline"] = self.headline()
        data["deltas"] = self.deltas()
        return _finite(data)


def is_improvement(metric: str, delta: float) -> bool:
    """Whether a positive ``delta`` is good for ``metric`` (latency and sizes: lower is better)."""
    lower_better = any(metric.startswith(prefix) for prefix in LOWER_IS_BETTER)
    return delta < 0 if lower_better else delta > 0


def _finite(value: Any) -> Any:
    # JSON has no NaN: write null so browsers and jq can read the file
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
