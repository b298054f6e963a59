"""Hot swap under load: zero failed requests, and a corrupted version is refused.

Clients send requests while the alias moves; every response names the version that produced it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient

from tests.conftest import Server, use_tracking_store
from tests.serving.live import Load, log_version, wait_for

pytestmark = pytest.mark.slow


def metrics(server: Server) -> str:
    return requests.get(f"{server.url}/metrics", timeout=10).text


def test_hot_swap_under_load_and_refusal_of_a_corrupted_version(tmp_path: Path) -> None:
    uri = use_tracking_store(tmp_path / "mlflow")
    v1, _ = log_version(tmp_path, 800)
    v2, _ = log_version(tmp_path, 600)
    v3, v3_model_id = log_version(tmp_path, 400)
    (sqlite,) = (tmp_path / "mlflow").rglob(f"{v3_model_id}/**/index/chroma/chroma.sqlite3")
    data = bytearray(sqlite.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte altered after registration
    sqlite.write_bytes(bytes(data))
    client = MlflowClient()
    client.set_registered_model_alias("swap", "production", v1)

    server = Server(
        {
            "MLFLOW_TRACKING_URI": uri,
            "RAG_MODEL_URI": "models:/swap@production",
            "RAG_POLL_SECONDS": "1",
            "RAG_TEST_LOG": str(tmp_path / "server.log"),
        }
    )
    load = None
    try:
        server.wait_ready()
        load = Load(server.url)
        wait_for(lambda: load.last(10) == [v1] * 10)
        client.set_registered_model_alias("swap", "production", v2)
        wait_for(lambda: load.last(40) == [v2] * 40)  # both workers swapped
        client.set_registered_model_alias("swap", "production", v3)
        # each worker tries v3 and refuses it (on a busy machine a load can take seconds)
        wait_for(lambda: "rag_model_reload_failures_total 2.0" in metrics(server))
        wait_for(lambda: len(load.outcomes) > 0 and load.last(20) == [v2] * 20)
        ready = requests.get(f"{server.url}/ready", timeout=10).json()
        failure = ready["details"]["watch"]["last_failure"]
        assert failure["version"] == v3
        assert "IntegrityError" in failure["error"]
        assert "chroma/chroma.sqlite3" in failure["error"]
        text = metrics(server)
        assert "rag_model_reload_failures_total 2.0" in text  # one per worker
        assert "rag_model_reloads_total 2.0" in text
    finally:
        if load is not None:
            load.stop()
        server.stop()
    outcomes = load.outcomes
    print(
        f"\nhot swap under load: {len(outcomes)} requests, versions "
        f"{sorted({str(h) for _, h, _ in outcomes})}, "
        f"failed {[o for o in outcomes if o[0] != 200]}"
    )
    assert len(outcomes) > 100
    failed = [outcome for outcome in outcomes if outcome[0] != 200]
    assert failed == []
    assert all(header == body for _, header, body in outcomes)  # each names its own version
    assert {header for _, header, _ in outcomes} == {v1, v2}
