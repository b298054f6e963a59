"""Gated promotion, recorded decisions, history, rollback and racing promotions (SQLite store)."""

from __future__ import annotations

import threading
import time

import pytest
from mlflow import MlflowClient

from rag_model.packaging.lifecycle import (
    LOCK_SUFFIX,
    PromotionRefused,
    history,
    production_stack,
    promote,
    promotion_lock,
    record_evaluation,
    rollback,
)
from rag_model.packaging.registry import RegistryError, current_alias_version, resolve_version
from tests.conftest import free_port

pytestmark = pytest.mark.integration
NAME = "lifecycle"


def add_version(client: MlflowClient, hit_rate: float | None, digest: str = "d1") -> str:
    """A registered version (no artifacts needed for the registry), evaluated unless None."""
    version = client.create_model_version(NAME, source="file:///dev/null").version
    if hit_rate is not None:
        metrics = {"hit_rate_at_4": hit_rate, "latency_p95_ms": 50.0}
        record_evaluation(NAME, str(version), metrics, digest, 4, "run", client)
    return str(version)


@pytest.fixture
def client(tracking_store: str) -> MlflowClient:
    client = MlflowClient()
    client.create_registered_model(NAME)
    return client


def test_promote_records_the_decision_on_the_version(client: MlflowClient) -> None:
    v1 = add_version(client, 0.8)
    event = promote(NAME, v1, actor="alice", client=client)
    assert (event.action, event.version, event.previous) == ("promoted", v1, None)
    assert client.get_model_version_by_alias(NAME, "production").version == int(v1)
    version = client.get_model_version(NAME, v1)
    assert version.tags["promotion.decision"] == "promoted"
    assert version.tags["promotion.actor"] == "alice"
    assert version.tags["promotion.compared_to"] == "none"
    assert version.tags["eval.hit_rate"] == "0.8"  # the k-free name the gate reads
    assert "promoted @production by alice: no production version yet" in version.description


def test_worse_candidate_is_refused_recorded_and_production_unchanged(client: MlflowClient):
    v1, v2 = add_version(client, 0.8), add_version(client, 0.5)
    promote(NAME, v1, client=client)
    with pytest.raises(PromotionRefused, match="hit_rate 0.5000 is worse than production version"):
        promote(NAME, v2, client=client)
    assert client.get_model_version_by_alias(NAME, "production").version == int(v1)
    refused = history(NAME, client)[-1]
    assert (refused.action, refused.version, refused.previous) == ("refused", v2, v1)
    assert refused.compared == {
        "candidate.hit_rate": 0.5,
        "production.hit_rate": 0.8,
        "candidate.latency_p95_ms": 50.0,
        "production.latency_p95_ms": 50.0,
    }


def test_force_needs_a_reason_and_is_recorded_as_forced(client: MlflowClient) -> None:
    v1, v2 = add_version(client, 0.8), add_version(client, 0.5)
    promote(NAME, v1, client=client)
    with pytest.raises(RegistryError, match="--force needs a --reason"):
        promote(NAME, v2, force=True, client=client)
    event = promote(NAME, v2, force=True, reason="hotfix", actor="bob", client=client)
    assert event.action == "forced"
    assert event.reason.startswith("forced by bob: hotfix (gate: hit_rate 0.5000 is worse")


def test_unevaluated_or_other_dataset_versions_are_refused(client: MlflowClient) -> None:
    v1 = add_version(client, 0.8)
    promote(NAME, v1, client=client)
    bare = add_version(client, None)
    with pytest.raises(PromotionRefused, match=f"version {bare} has no evaluation"):
        promote(NAME, bare, client=client)
    other = add_version(client, 0.9, digest="d2")
    with pytest.raises(PromotionRefused, match="evaluated on different datasets"):
        promote(NAME, other, client=client)


def test_unknown_version_and_model(client: MlflowClient) -> None:
    with pytest.raises(RegistryError, match="model 'lifecycle' has no version '9'"):
        promote(NAME, "9", client=client)
    with pytest.raises(RegistryError, match="registered model 'missing' does not exist"):
        promote("missing", "1", client=client)
    with pytest.raises(RegistryError, match="registered model 'missing' does not exist"):
        history("missing", client)


def test_an_unreachable_registry_is_not_taken_for_a_missing_alias(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    down = MlflowClient(url, registry_uri=url)
    with pytest.raises(MlflowException, match="Connection refused"):
        resolve_version(NAME, "production", down)
    with pytest.raises(MlflowException, match="Connection refused"):
        current_alias_version(NAME, "production", down)  # not None: "no production yet"


def test_rollback_walks_back_the_production_chain(client: MlflowClient) -> None:
    v1, v2, v3 = (add_version(client, rate) for rate in (0.7, 0.8, 0.9))
    for version in (v1, v2, v3):
        promote(NAME, version, client=client)
    first = rollback(NAME, reason="bad answers", client=client)
    assert (first.version, first.previous) == (v2, v3)
    assert first.reason == f"rolled back from version {v3}: bad answers"
    assert rollback(NAME, client=client).version == v1
    with pytest.raises(RegistryError, match="no earlier @production version"):
        rollback(NAME, client=client)
    assert client.get_model_version_by_alias(NAME, "production").version == int(v1)
    events = history(NAME, client)
    assert [e.action for e in events] == ["promoted"] * 3 + ["rolled_back"] * 2
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5]
    assert production_stack(events) == [v1]


def test_racing_promotions_end_consistent_and_both_recorded(tracking_store: str) -> None:
    setup = MlflowClient()
    setup.create_registered_model(NAME)
    v1, v2, v3 = (add_version(setup, rate) for rate in (0.7, 0.8, 0.8))
    promote(NAME, v1, client=setup)
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def race(version: str) -> None:
        client = MlflowClient()  # each racer its own client, as separate processes would be
        barrier.wait()
        try:
            outcomes[version] = promote(NAME, version, client=client).action
        except PromotionRefused:
            outcomes[version] = "refused"

    threads = [threading.Thread(target=race, args=(v,)) for v in (v2, v3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert outcomes == {v2: "promoted", v3: "promoted"}  # equal scores: both pass, in turn
    events = history(NAME, setup)
    first, second = events[1], events[2]
    assert first.previous == v1
    assert second.previous == first.version  # compared with the production it replaced
    assert str(setup.get_model_version_by_alias(NAME, "production").version) == second.version
    assert setup.search_registered_models(f"name = '{NAME}{LOCK_SUFFIX}'") == []


def test_a_stale_lock_is_taken_over_and_a_live_one_times_out(client: MlflowClient) -> None:
    lock = f"{NAME}{LOCK_SUFFIX}"
    client.create_registered_model(lock, tags={"token": "dead", "created": "0"})
    v1 = add_version(client, 0.8)
    assert promote(NAME, v1, client=client).action == "promoted"  # the dead lock was removed
    client.create_registered_model(lock, tags={"token": "live", "created": str(time.time())})
    with pytest.raises(RegistryError, match="held the lock for over 1 s"):
        with promotion_lock(NAME, client, timeout=1):
            pass
