"""What an evaluation report shows, as plain data: the renderers (HTML, Markdown, JSON) read it.

Kept free of MLflow so reports can be rendered and tested without a tracking store; the code
that gathers the baselines from the registry lives in ``experiments``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from rag_model.shadow import ShadowSummary

# the metrics shown first, in this order, when present (k-suffixed names are matched by prefix)
HEADLINE_PREFIXES = (
    "hit_rate",
    "recall",
    "mrr",
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
    # what live traffic says (evaluation.report.live), on the index page across versions
    "live_traces",
    "live_latency_p50_ms",
    "live_latency_p95_ms",
    "live_feedback_count",
    "live_positive_share",
)
LOWER_IS_BETTER = ("latency_", "live_latency_", "build_seconds", "index_bytes")
# metrics cut at the model's own k: versions with different k compare on what each serves
_AT_K = re.compile(r"^(hit_rate|recall|mrr)_at_(\d+)$")


def headline_names(names: Iterable[str]) -> list[str]:
    """The headline metrics among ``names``, in display order."""
    names = set(names)
    ordered: list[str] = []
    for prefix in HEADLINE_PREFIXES:
        ordered += sorted(n for n in names if n.startswith(prefix) and n not in ordered)
    return ordered


def comparable_metrics(metrics: dict[str, float], k: int | None = None) -> dict[str, float]:
    """Metrics under names that compare across versions with different k.

    ``hit_rate_at_4`` of a k=4 version becomes ``hit_rate``; other ``*_at_<n>`` cut-offs of
    these metrics, and the bookkeeping value ``k``, are dropped. With ``k=None`` (metrics read
    back from version tags, which carry both forms) only the dropping applies.
    """
    out = {}
    for name, value in metrics.items():
        match = _AT_K.match(name)
        if name == "k":
            continue
        if match is None:
            out.setdefault(name, value)
        elif k is not None and int(match.group(2)) == k:
            out[match.group(1)] = value
    return out


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
    # what live traffic says (``evaluation.report.live``): this version's ``live_*`` metrics,
    # and production's when another version is in production (None: none to compare with)
    live: dict[str, float] = field(default_factory=dict)
    live_production: Baseline | None = None
    # what changed against @production (experiments.diff.VersionDiff.to_dict()); None: no
    # production version to compare with
    changes: dict[str, Any] | None = None
    # this version shadowed against production (``evaluation.report.shadow``): the pairs'
    # summary, or None with ``shadow_note`` saying why there is none
    shadow: ShadowSummary | None = None
    shadow_note: str = ""

    @property
    def title(self) -> str:
        version = f"version {self.version}" if self.version else f"run {self.run_id[:8]}"
        return f"{self.model_name} {version}"

    def headline(self) -> list[str]:
        """The headline metric names present in ``metrics``, in display order."""
        return headline_names(self.metrics)

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

    def live_deltas(self) -> dict[str, float]:
        """``{live metric: this - production}`` for live metrics both versions have."""
        if self.live_production is None:
            return {}
        other = self.live_production.metrics
        return {name: value - other[name] for name, value in self.live.items() if name in other}

    def to_json_dict(self) -> dict[str, Any]:
        """The metrics JSON written beside the report: data, headline names and deltas."""
        data = asdict(self)
        data["title"] = self.title
        data["headline"] = self.headline()
        data["deltas"] = self.deltas()
        data["live_deltas"] = self.live_deltas()
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
