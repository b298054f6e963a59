"""Helpers for the tests against live servers: fake-embedder versions, client load, waiting."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

from tests.conftest import FAKE_CONFIG, SAMPLE_CORPUS


def log_version(root: Path, chunk_size: int, name: str = "swap") -> tuple[str, str]:
    """Build, log and register a fake-embedder version in the current store: (version, model id).

    Versions differ by ``chunk_size``; each takes about a second to build.
    """
    import mlflow

    from rag_model.build import build_snapshot
    from rag_model.config import RagConfig
    from rag_model.packaging.log import log_rag_model
    from rag_model.packaging.registry import register_version

    config = RagConfig.from_dict({**FAKE_CONFIG, "chunking": {"chunk_size": chunk_size}})
    built = build_snapshot(config, SAMPLE_CORPUS, root / f"snapshot-{chunk_size}")
    with mlflow.start_run():
        info = log_rag_model(config, built.snapshot_dir)
    return register_version(info.model_uri, name).version, info.model_id


class Load:
    """Clients sending /v1/query continuously; every outcome is kept.

    An outcome is ``(status, X-Model-Version header, body's model version)``, or
    ``(0, None, repr(exception))`` when no response came back.
    """

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

    def failures(self) -> list[tuple[int, str | None, str | None]]:
        return [outcome for outcome in self.outcomes if outcome[0] != 200]

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def wait_for(condition: Callable[[], object], timeout: float = 90.0) -> None:
    """Poll ``condition`` every 0.2 s until it is true; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)
