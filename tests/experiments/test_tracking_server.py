"""The whole lifecycle through a live `mlflow server` (SQLite backend, served artifacts).

register -> evaluate -> promote (allowed) -> register worse -> evaluate -> promote (refused,
recorded) -> force -> rollback, then `history` prints it in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_CORPUS, SAMPLE_EVAL, invoke_cli
from tests.ram import database_dir
from tests.tracking_services import mlflow_server as start_mlflow_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("mlflow-server")
    with start_mlflow_server(
        root, f"sqlite:///{database_dir(root) / 'backend.db'}", str(root / "artifacts")
    ) as url:
        yield url, root / "artifacts"


def test_lifecycle_through_a_live_tracking_server(
    mlflow_server: tuple[str, Path],
    use_tracking_server: Callable[[str, str], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, artifacts = mlflow_server
    use_tracking_server(url, "lifecycle")
    monkeypatch.setenv("RAG_ACTOR", "ci")
    data = ["--fake", "--data-path", str(SAMPLE_CORPUS), "--eval-path", str(SAMPLE_EVAL)]
    data += ["--max-questions", "40"]  # the lifecycle's plumbing, not the metrics

    good = invoke_cli("main", *data)
    assert "registered rag-model version 1 as @candidate" in good.output
    assert any(artifacts.rglob("MLmodel"))  # the model went to the server's artifact store
    allowed = invoke_cli("promote")
    assert allowed.exit_code == 0
    assert "rag-model@production -> version 1: promoted" in allowed.output

    worse = invoke_cli("main", *data, "--k", "1")  # one chunk per question: lower hit rate
    assert "registered rag-model version 2 as @candidate" in worse.output
    refused = invoke_cli("promote")
    assert refused.exit_code == 3
    assert "refused to point @production at version 2: hit_rate" in refused.output
    assert "(recorded on version 2)" in refused.output

    forced = invoke_cli("promote", "--force", "--reason", "customer demo")
    assert forced.exit_code == 0
    assert "-> version 2 (was v1): forced" in forced.output
    back = invoke_cli("rollback", "--reason", "demo over")
    assert back.exit_code == 0
    assert "rag-model@production -> version 1 (was v2): rolled back from version 2: demo over" in (
        back.output
    )

    listing = invoke_cli("history").output.splitlines()
    rows = [line.split() for line in listing[1:-1]]
    assert [(row[0], row[2], row[3], row[4]) for row in rows] == [
        ("1", "promoted", "1", "-"),
        ("2", "refused", "2", "1"),
        ("3", "forced", "2", "1"),
        ("4", "rolled_back", "1", "2"),
    ]
    assert all(row[5] == "ci" for row in rows)
    assert listing[-1].startswith("@production now: version 1")
