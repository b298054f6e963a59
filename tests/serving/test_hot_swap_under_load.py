"""Hot swap under load: zero failed requests, and a corrupted version is refused.

Clients send requests while the alias moves; every response names the version that produced it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow import MlflowClient

from rag_model.build import build_snapshot
from rag_model.config import RagConfig
from rag_model.packaging.log import log_rag_model
from rag_model.packaging.registry import register_version
from tests.conftest import FAKE_CONFIG, SAMPLE_CORPUS, Server, use_tracking_store

pytestmark = pytest.mark.slow


def log_version(root: Path, chunk_size: int) -> tuple[str, str]:
    config = RagConfig.from_dict({**FAKE_CONFIG, "chunking": {"chunk_size": chunk_size}})
    built = build_snapshot(config, SAMPLE_CORPUS, root / f"snapshot-{chunk_size}")
    with mlflow.start_run():
        info = log_rag_model(config, built.snapshot_dir)
    return register_version(info.model_uri, "swap").version, info.model_id


class Load:
    """Clients sending /v1/query continuously; every outcome is kept."""

    def __init__(self, url: str, clients: int = 2) -> None:
        self.url = url
        self.outcomes: list[tuple[int, str | None, str | None]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            try:
                response = session.post(
                    f"{self.url}/v1/query", json={"question": "What is oxygen?"}, timeout=30
                )
                body = response.json()
                self.outcomes.append(
                    (
                        response.status_code,
                        response.headers.get("X-Model-Version"),
                        body.get("model", {}).get("version"),
                    )
                )
            except requests.RequestException as exc:
                self.outcomes.append((0, None, repr(exc)))

    def last(self, count: int) -> list[str | None]:
        return [version for _, version, _ in self.outcomes[-count:]]

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def wait_for(condition, timeout: float = 90.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


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
        time.sleep(5)  # several polls: each worker tries v3 and refuses it
        wait_for(lambda: len(load.outcomes) > 0 and load.last(20) == [v2] * 20)
        ready = requests.get(f"{server.url}/ready", timeout=10).json()
        failure = ready["details"]["watch"]["last_failure"]
        assert failure["version"] == v3
        assert "IntegrityError" in failure["error"]
        assert "chroma/chroma.sqlite3" in failure["error"]
        metrics = requests.get(f"{server.url}/metrics", timeout=10).text
        assert "rag_model_reload_failures_total 2.0" in metrics  # one per worker
        assert "rag_model_reloads_total 2.0" in metrics
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
