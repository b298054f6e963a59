"""Faults under load on a real gunicorn server: a worker killed, the tracking server gone.

Fake-embedder versions (no torch) keep the servers' start-up short; the faults are the real ones.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient

from bench.loadgen import process_tree
from rag_model.packaging.registry import register_version
from tests.conftest import Server, use_tracking_store
from tests.ram import database_dir
from tests.serving.live import Load, log_version, wait_for
from tests.tracking_services import MlflowServer

pytestmark = pytest.mark.slow


def workers(server: Server) -> set[int]:
    """The pids of the gunicorn master's workers (its child processes)."""
    return set(process_tree(server.process.pid)) - {server.process.pid}


def loads_logged(server: Server, uri: str) -> int:
    """How many times a worker logged that it loaded ``uri``."""
    return server.log.read_text(errors="replace").count(f"loaded {uri} (version")


def test_a_killed_worker_is_replaced_and_only_its_in_flight_request_fails(tmp_path: Path) -> None:
    uri = use_tracking_store(tmp_path / "mlflow")
    version, _ = log_version(tmp_path, 800, name="faults")
    MlflowClient().set_registered_model_alias("faults", "production", version)
    server = Server(
        {
            "MLFLOW_TRACKING_URI": uri,
            "RAG_MODEL_URI": "models:/faults@production",
            "RAG_TEST_LOG": str(tmp_path / "server.log"),
        },
        workers=2,
    )
    load = None
    try:
        server.wait_ready()
        wait_for(lambda: loads_logged(server, "models:/faults@production") == 2)
        # the master's one-off children (the version's preparation) may still be exiting
        wait_for(lambda: len(workers(server)) == 2)
        before = workers(server)
        load = Load(server.url, clients=4)
        wait_for(lambda: len(load.outcomes) >= 50)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        # the master forks a replacement, which accepts connections once its model is loaded
        wait_for(lambda: len(workers(server) - before) == 1)
        wait_for(lambda: loads_logged(server, "models:/faults@production") == 3)
        assert requests.get(f"{server.url}/ready", timeout=10).status_code == 200
        replaced_at = len(load.outcomes)
        wait_for(lambda: len(load.outcomes) >= replaced_at + 100)  # keep loading a while
        after = workers(server)
    finally:
        if load is not None:
            load.stop()
        server.stop()
    outcomes, failed = load.outcomes, load.failures()
    print(
        f"\nworker {victim} killed under 4 clients: {len(outcomes)} requests, "
        f"{len(failed)} failed {failed}; workers {sorted(before)} -> {sorted(after)}"
    )
    assert victim not in after and len(after) == 2
    # Sync workers with one thread: a worker accepts one connection, answers it and closes it
    # before it accepts the next; connections not yet accepted wait in the listening socket's
    # queue, which the master and the other workers share, not in the killed worker. So a
    # SIGKILL loses at most the one request the worker was answering, and that one fails as a
    # broken connection (reset before the answer, or cut inside it), never as an HTTP error.
    assert len(failed) <= 1
    broken = ("ConnectionError(", "ChunkedEncodingError(")
    assert all(status == 0 and error.startswith(broken) for status, _, error in failed)
    assert len(outcomes) - len(failed) >= 150


def ready_watch(server: Server) -> dict:
    """The watcher details of whichever worker answers /ready."""
    response = requests.get(f"{server.url}/ready", timeout=10)
    assert response.status_code == 200  # still ready: the loaded version is served
    return response.json()["details"]["watch"]


def test_serving_outlives_the_tracking_server_and_follows_it_again_when_back(
    tmp_path: Path, use_tracking_server: Callable[[str, str], None]
) -> None:
    store = f"sqlite:///{database_dir(tmp_path) / 'backend.db'}"
    tracking = MlflowServer(tmp_path, store, str(tmp_path / "art"))
    tracking.start()
    server = load = None
    try:
        use_tracking_server(tracking.url, "faults")
        v1, model_id = log_version(tmp_path, 800, name="faults")
        v2 = register_version(f"models:/{model_id}", "faults").version  # same files, cheaper
        client = MlflowClient()
        client.set_registered_model_alias("faults", "production", v1)
        server = Server(
            {
                "MLFLOW_TRACKING_URI": tracking.url,
                "RAG_MODEL_URI": "models:/faults@production",
                "RAG_POLL_SECONDS": "1",
                "RAG_WATCH_MAX_BACKOFF_SECONDS": "8",
                "RAG_TEST_LOG": str(tmp_path / "gunicorn.log"),
            },
            workers=1,  # every /ready shows the same watcher
        )
        server.wait_ready()
        load = Load(server.url)
        wait_for(lambda: load.last(10) == [v1] * 10)

        tracking.kill()
        outage_started = len(load.outcomes)
        seen: list[dict] = []
        wait_for(lambda: seen.append(ready_watch(server)) or seen[-1]["consecutive_failures"] >= 3)
        outage_requests = len(load.outcomes) - outage_started
        metrics = requests.get(f"{server.url}/metrics", timeout=10).text

        tracking.start()  # same port, same store
        wait_for(lambda: ready_watch(server)["consecutive_failures"] == 0)
        recovered = ready_watch(server)
        client.set_registered_model_alias("faults", "production", v2)  # a promotion afterwards
        wait_for(lambda: load.last(20) == [v2] * 20)
    finally:
        if load is not None:
            load.stop()
        if server is not None:
            server.stop()
        tracking.stop()
    failing = [watch for watch in seen if watch["consecutive_failures"] > 0]
    backoffs = sorted({watch["backoff_seconds"] for watch in failing})
    print(
        f"\ntracking server down: {outage_requests} requests served meanwhile; /ready showed "
        f"failures in a row {sorted({w['consecutive_failures'] for w in failing})}, backoff "
        f"{backoffs} s; {len(load.outcomes)} requests in all, {len(load.failures())} failed"
    )
    assert load.failures() == []
    assert outage_requests > 0
    for watch in failing:  # doubling from the 1 s poll, capped at 8 s
        assert watch["backoff_seconds"] == min(2 ** watch["consecutive_failures"], 8)
        assert watch["last_check"]["ok"] is False
        assert "Connection refused" in watch["last_check"]["error"]
        assert watch["next_check_at"] is not None
    assert {2, 4, 8} <= set(backoffs)
    watch_failures = next(
        line for line in metrics.splitlines() if line.startswith("rag_model_watch_failures_total ")
    )
    assert float(watch_failures.split()[-1]) >= 3
    assert recovered["last_check"]["ok"] is True
    assert recovered["backoff_seconds"] == 1
    assert {header for _, header, _ in load.outcomes} == {v1, v2}
