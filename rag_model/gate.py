"""The promotion gate: may a candidate's evaluation replace production's? Pure, no MLflow.

A version's evaluation is read from the metrics on its LoggedModel (each logged with the eval
set's dataset digest by ``main`` and ``evaluate``), or, for a version evaluated before those
existed, from its registry tags (``eval.<metric>``, ``eval.dataset_digest``), which are still
written as a copy for the registry page. The gate compares only evaluations of the same eval set
(same digest): the primary metric may not drop by more than a tolerance, and p95 latency may
not grow by more than a relative bound plus a small absolute slack (tiny latencies are noisy).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rag_model.errors import ConfigError
from rag_model.shadow import ShadowSummary

EVAL_TAG_PREFIX = "eval."
# metrics cut at the model's k (only the model's own k is ever logged for a version)
_AT_K = re.compile(r"^(hit_rate|recall|mrr)_at_\d+$")
DIGEST_TAG = "eval.dataset_digest"


@dataclass(frozen=True)
class GatePolicy:
    """What "not worse" means.

    Example:
        >>> GatePolicy(primary_metric="mrr", tolerance=0.02).tolerance
        0.02
    """

    primary_metric: str = "hit_rate"  # higher is better
    tolerance: float = 0.01  # allowed absolute drop of the primary metric
    latency_metric: str = "latency_p95_ms"
    max_latency_regression: float = 0.25  # allowed relative growth of p95 latency
    latency_slack_ms: float = 10.0  # plus this much, so 3 ms -> 5 ms is not a "regression"
    # share of shadowed live questions on which the candidate's first source is production's
    # (rag_model.shadow); None: no shadow requirement
    min_shadow_agreement: float | None = None

    def __post_init__(self) -> None:
        for name in ("tolerance", "max_latency_regression", "latency_slack_ms"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0 or math.isnan(value):
                raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
        agreement = self.min_shadow_agreement
        if agreement is not None and not (
            isinstance(agreement, (int, float)) and 0 <= agreement <= 1
        ):
            raise ConfigError(f"min_shadow_agreement must be between 0 and 1, got {agreement!r}")
        if not self.primary_metric:
            raise ConfigError("primary_metric must name a metric, e.g. 'hit_rate' or 'mrr'")


@dataclass(frozen=True)
class Evaluation:
    """One version's evaluation as recorded on the version."""

    version: str
    dataset_digest: str
    metrics: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_tags(cls, version: str, tags: Mapping[str, str]) -> Evaluation | None:
        """The evaluation in a version's tags, or None if it was never evaluated."""
        digest = tags.get(DIGEST_TAG)
        if not digest:
            return None
        metrics = {}
        for key, value in tags.items():
            if key.startswith(EVAL_TAG_PREFIX) and key != DIGEST_TAG:
                try:
                    metrics[key[len(EVAL_TAG_PREFIX) :]] = float(value)
                except ValueError:
                    continue
        return cls(version=version, dataset_digest=digest, metrics=metrics)


@dataclass(frozen=True)
class ModelMetric:
    """One metric of a LoggedModel, as MLflow records it (the fields the gate needs)."""

    key: str
    value: float
    dataset_digest: str | None
    timestamp: int = 0


def evaluation_from_model_metrics(
    version: str, metrics: Iterable[ModelMetric], digest: str | None = None
) -> Evaluation | None:
    """A version's evaluation from its LoggedModel's metrics, or None if it has none.

    Only metrics logged against a dataset count. A model evaluated on several eval sets has
    one evaluation per digest: ``digest``'s when it has one (production on the candidate's eval
    set), else the most recent; within it, the latest value of each metric.
    """
    by_digest: dict[str, dict[str, ModelMetric]] = {}
    for metric in metrics:
        if not metric.dataset_digest:
            continue
        latest = by_digest.setdefault(metric.dataset_digest, {})
        if metric.key not in latest or metric.timestamp >= latest[metric.key].timestamp:
            latest[metric.key] = metric
    if not by_digest:
        return None
    chosen = (
        digest
        if digest in by_digest
        else max(by_digest, key=lambda d: max(m.timestamp for m in by_digest[d].values()))
    )
    values = {key: float(metric.value) for key, metric in by_digest[chosen].items()}
    # the metrics cut at the model's own k also under their k-free name (hit_rate_at_4 ->
    # hit_rate), as on the tags: versions with different k compare on what each one serves
    for key, value in list(values.items()):
        if match := _AT_K.match(key):
            values.setdefault(match.group(1), value)
    return Evaluation(version=version, dataset_digest=chosen, metrics=values)


@dataclass(frozen=True)
class GateResult:
    """The verdict, why, and the values compared (``candidate.x`` / ``production.x``)."""

    allowed: bool
    reason: str
    compared: dict[str, float] = field(default_factory=dict)


def check_gate(
    candidate_version: str,
    candidate: Evaluation | None,
    production: Evaluation | None,
    policy: GatePolicy,
    shadow: ShadowSummary | None = None,
) -> GateResult:
    """Decide whether ``candidate`` may replace ``production`` (None: no production yet).

    With ``policy.min_shadow_agreement``, ``shadow`` (the candidate's pairs against production
    on live traffic) must exist and reach it, after the evaluation's checks pass.
    """
    result = _check_evaluation(candidate_version, candidate, production, policy)
    if policy.min_shadow_agreement is None or not result.allowed:
        return result
    bound = policy.min_shadow_agreement
    compared = dict(result.compared)
    compared["policy.min_shadow_agreement"] = bound
    if shadow is None or shadow.pairs == 0:
        against = f"production version {production.version}" if production else "production"
        return GateResult(
            False,
            f"version {candidate_version} has no shadow pairs against {against}; serve it "
            "with RAG_SHADOW_URI and RAG_SHADOW_SAMPLE first (rag-model shadow-report shows them)",
            compared,
        )
    compared.update(
        {
            "candidate.shadow_top1_agreement": shadow.top1_agreement,
            "candidate.shadow_jaccard": shadow.jaccard,
            "candidate.shadow_answer_f1": shadow.answer_f1,
            "candidate.shadow_pairs": float(shadow.pairs),
        }
    )
    if shadow.top1_agreement < bound:
        return GateResult(
            False,
            f"shadow top-1 agreement {shadow.top1_agreement:.4f} over {shadow.pairs} live "
            f"questions is below --min-shadow-agreement {bound}",
            compared,
        )
    reason = (
        f"{result.reason}; shadow top-1 agreement {shadow.top1_agreement:.4f} >= {bound} "
        f"({shadow.pairs} pairs)"
    )
    return GateResult(True, reason, compared)


def _check_evaluation(
    candidate_version: str,
    candidate: Evaluation | None,
    production: Evaluation | None,
    policy: GatePolicy,
) -> GateResult:
    metric = policy.primary_metric
    if candidate is None:
        return GateResult(
            False,
            f"version {candidate_version} has no evaluation (no metrics with a dataset on its "
            f"LoggedModel, no {DIGEST_TAG} tag); evaluate it with 'mlflow run . -e main' or "
            "'rag-model evaluate', or promote with --force and a --reason",
        )
    if metric not in candidate.metrics:
        return GateResult(
            False,
            f"version {candidate.version} has no metric {metric!r}; it has "
            f"{', '.join(sorted(candidate.metrics)) or 'none'}",
        )
    compared = {f"candidate.{metric}": candidate.metrics[metric]}
    if production is None:
        return GateResult(True, "no production version yet: the first evaluated version", compared)
    if production.dataset_digest != candidate.dataset_digest:
        return GateResult(
            False,
            f"version {candidate.version} and production version {production.version} were "
            f"evaluated on different datasets (digest {candidate.dataset_digest} vs "
            f"{production.dataset_digest}); evaluate both on the same eval set",
        )
    if metric not in production.metrics:
        return GateResult(
            False,
            f"production version {production.version} has no metric {metric!r} to compare with",
        )
    new, old = candidate.metrics[metric], production.metrics[metric]
    compared[f"production.{metric}"] = old
    latency = policy.latency_metric
    has_latency = latency in candidate.metrics and latency in production.metrics
    if has_latency:  # recorded with every decision, refusals included
        new_ms, old_ms = candidate.metrics[latency], production.metrics[latency]
        compared.update({f"candidate.{latency}": new_ms, f"production.{latency}": old_ms})
    if new < old - policy.tolerance:
        return GateResult(
            False,
            f"{metric} {new:.4f} is worse than production version {production.version}'s "
            f"{old:.4f} by more than the tolerance {policy.tolerance}",
            compared,
        )
    reasons = [f"{metric} {new:.4f} vs {old:.4f} (tolerance {policy.tolerance})"]
    if has_latency:
        bound = old_ms * (1 + policy.max_latency_regression) + policy.latency_slack_ms
        if new_ms > bound:
            return GateResult(
                False,
                f"{latency} {new_ms:.1f} exceeds production version {production.version}'s "
                f"{old_ms:.1f} by more than {policy.max_latency_regression:.0%} + "
                f"{policy.latency_slack_ms:g} ms (bound {bound:.1f})",
                compared,
            )
        reasons.append(f"{latency} {new_ms:.1f} <= bound {bound:.1f}")
    return GateResult(True, "; ".join(reasons), compared)
