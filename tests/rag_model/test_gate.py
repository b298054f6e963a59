"""The promotion gate: every reason to refuse, and what passes."""

import pytest

from rag_model.errors import ConfigError
from rag_model.gate import (
    Evaluation,
    GatePolicy,
    ModelMetric,
    check_gate,
    evaluation_from_model_metrics,
)

POLICY = GatePolicy()


def evaluation(version: str, hit_rate: float = 0.8, p95: float = 100.0, digest: str = "d1"):
    return Evaluation(version, digest, {"hit_rate": hit_rate, "latency_p95_ms": p95})


def test_first_evaluated_version_may_be_promoted() -> None:
    result = check_gate("1", evaluation("1"), None, POLICY)
    assert result.allowed
    assert result.reason == "no production version yet: the first evaluated version"


def test_unevaluated_candidate_is_refused_with_what_to_do() -> None:
    result = check_gate("4", None, evaluation("1"), POLICY)
    assert not result.allowed
    assert result.reason.startswith(
        "version 4 has no evaluation (no metrics with a dataset on its LoggedModel, "
        "no eval.dataset_digest tag)"
    )
    assert "mlflow run . -e main" in result.reason


def test_different_eval_sets_are_not_compared() -> None:
    result = check_gate("2", evaluation("2", digest="aaa"), evaluation("1", digest="bbb"), POLICY)
    assert not result.allowed
    assert "evaluated on different datasets (digest aaa vs bbb)" in result.reason


def test_worse_beyond_tolerance_is_refused_within_tolerance_passes() -> None:
    worse = check_gate("2", evaluation("2", hit_rate=0.78), evaluation("1", hit_rate=0.8), POLICY)
    assert not worse.allowed
    assert worse.reason == (
        "hit_rate 0.7800 is worse than production version 1's 0.8000 by more than the "
        "tolerance 0.01"
    )
    assert worse.compared == {
        "candidate.hit_rate": 0.78,
        "production.hit_rate": 0.8,
        "candidate.latency_p95_ms": 100.0,
        "production.latency_p95_ms": 100.0,
    }
    close = check_gate("2", evaluation("2", hit_rate=0.795), evaluation("1", hit_rate=0.8), POLICY)
    assert close.allowed
    assert close.reason.startswith("hit_rate 0.7950 vs 0.8000 (tolerance 0.01)")


def test_latency_regression_beyond_bound_is_refused() -> None:
    slow = check_gate("2", evaluation("2", p95=140.1), evaluation("1", p95=100.0), POLICY)
    assert not slow.allowed
    assert slow.reason == (
        "latency_p95_ms 140.1 exceeds production version 1's 100.0 by more than 25% + 10 ms "
        "(bound 135.0)"
    )
    # tiny latencies are noisy: 3 ms -> 9 ms is within the absolute slack
    assert check_gate("2", evaluation("2", p95=9.0), evaluation("1", p95=3.0), POLICY).allowed


def test_missing_primary_metric_names_what_exists() -> None:
    policy = GatePolicy(primary_metric="ndcg_at_10")
    result = check_gate("2", evaluation("2"), evaluation("1"), policy)
    assert result.reason == "version 2 has no metric 'ndcg_at_10'; it has hit_rate, latency_p95_ms"


def test_evaluation_is_read_from_version_tags() -> None:
    tags = {"eval.dataset_digest": "d", "eval.hit_rate": "0.5", "eval.run_id": "abc", "x": "1"}
    found = Evaluation.from_tags("3", tags)
    assert found == Evaluation("3", "d", {"hit_rate": 0.5})
    assert Evaluation.from_tags("3", {"eval.hit_rate": "0.5"}) is None


@pytest.mark.parametrize("field", ["tolerance", "max_latency_regression", "latency_slack_ms"])
def test_policy_refuses_negative_bounds(field: str) -> None:
    with pytest.raises(ConfigError, match=f"{field} must be a number >= 0, got -1"):
        GatePolicy(**{field: -1})


def shadow(agreement: float, pairs: int = 40):
    from rag_model.shadow import ShadowSummary

    return ShadowSummary("m", "1", "2", pairs, 0.9, agreement, 0.8, 10.0, 20.0, 11.0, 25.0)


def test_min_shadow_agreement_needs_pairs_and_the_agreement() -> None:
    policy = GatePolicy(min_shadow_agreement=0.9)
    good, old = evaluation("2"), evaluation("1")
    none = check_gate("2", good, old, policy, None)
    assert not none.allowed
    assert none.reason.startswith("version 2 has no shadow pairs against production version 1")
    low = check_gate("2", good, old, policy, shadow(0.85))
    assert not low.allowed
    assert low.reason == (
        "shadow top-1 agreement 0.8500 over 40 live questions is below --min-shadow-agreement 0.9"
    )
    assert low.compared["candidate.shadow_top1_agreement"] == 0.85
    assert low.compared["policy.min_shadow_agreement"] == 0.9
    ok = check_gate("2", good, old, policy, shadow(0.95))
    assert ok.allowed and "shadow top-1 agreement 0.9500 >= 0.9 (40 pairs)" in ok.reason
    assert ok.compared["candidate.shadow_pairs"] == 40.0
    # without the option, shadow pairs change nothing
    assert check_gate("2", good, old, POLICY, shadow(0.1)).allowed


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_min_shadow_agreement_is_a_share(value: float) -> None:
    with pytest.raises(ConfigError, match="min_shadow_agreement must be between 0 and 1"):
        GatePolicy(min_shadow_agreement=value)


def test_logged_model_metrics_give_the_latest_evaluation_per_dataset() -> None:
    metrics = [
        ModelMetric("hit_rate", 0.5, "old", timestamp=1),
        ModelMetric("hit_rate", 0.7, "new", timestamp=5),
        ModelMetric("hit_rate", 0.8, "new", timestamp=9),  # evaluated again: the latest counts
        ModelMetric("latency_p95_ms", 40.0, "new", timestamp=9),
        ModelMetric("hit_rate/mean", 0.1, None, timestamp=10),  # not against a dataset
    ]
    latest = evaluation_from_model_metrics("3", metrics)
    assert latest == Evaluation("3", "new", {"hit_rate": 0.8, "latency_p95_ms": 40.0})
    on_old = evaluation_from_model_metrics("3", metrics, digest="old")
    assert on_old == Evaluation("3", "old", {"hit_rate": 0.5})
    assert evaluation_from_model_metrics("3", metrics, digest="other") == latest
    assert evaluation_from_model_metrics("3", metrics[-1:]) is None
    at_k = evaluation_from_model_metrics("4", [ModelMetric("mrr_at_3", 0.6, "d")])
    assert at_k.metrics == {"mrr_at_3": 0.6, "mrr": 0.6}  # the gate's k-free name too
