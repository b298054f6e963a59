"""The whole lifecycle through a live `mlflow server` (SQLite backend, served artifacts).

register -> evaluate -> promote (allowed) -> register worse -> evaluate -> promote (refused,
recorded) -> force -> rollback, then `history` prints it in order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner

from experiments.cli import cli
from tests.conftest import SAMPLE_CORPUS, SAMPLE_EVAL, MlflowServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    try:
        server.start()
        yield server.url, server.root / "artifacts"
    finally:
        server.stop()


def cli_run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_lifecycle_through_a_live_tracking_server(
    mlflow_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, artifacts = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", url)
    monkeypatch.setenv("RAG_ACTOR", "ci")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    mlflow.set_experiment("lifecycle")  # on the server, not an id left by another test
    data = ["--fake", "--data-path", str(SAMPLE_CORPUS), "--eval-path", str(SAMPLE_EVAL)]

    good = cli_run("main", *data)
    assert "registered rag-model version 1 as @candidate" in good.output
    assert any(artifacts.rglob("MLmodel"))  # the model went to the server's artifact store
    allowed = cli_run("promote")
    assert allowed.exit_code == 0
    assert "rag-model@production -> version 1: promoted" in allowed.output

    worse = cli_run("main", *data, "--k", "1")  # one chunk per question: lower hit rate
    assert "registered rag-model version 2 as @candidate" in worse.output
    refused = cli_run("promote")
    assert refused.exit_code == 3
    assert "refused to point @production at version 2: hit_rate" in refused.output
    assert "(recorded on version 2)" in refused.output

    forced = cli_run("promote", "--force", "--reason", "customer demo")
    assert forced.exit_code == 0
    assert "-> version 2 (was v1): forced" in forced.output
    back = cli_run("rollback", "--reason", "demo over")
    assert back.exit_code == 0
    assert "rag-model@production -> version 1 (was v2): rolled back from version 2: demo over" in (
        back.output
    )

    listing = cli_run("history").output.splitlines()
    rows = [line.split() for line in listing[1:-1]]
    assert [(row[0], row[2], row[3], row[4]) for row in rows] == [
        ("1", "promoted", "1", "-"),
        ("2", "refused", "2", "1"),
        ("3", "forced", "2", "1"),
        ("4", "rolled_back", "1", "2"),
    ]
    assert all(row[5] == "ci" for row in rows)
    assert listing[-1].startswith("@production now: version 1")
    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", ""))
