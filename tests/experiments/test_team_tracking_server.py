"""The team set-up end to end: `mlflow server` on PostgreSQL, artifacts in an S3 bucket.

PostgreSQL (a fresh cluster on a free port), moto's S3 server (IAM checks on) and
`mlflow server --serve-artifacts` start once for this module. Only the tracking server gets
the database password and the bucket keys, from its environment; the clients (the CLI here and
gunicorn) get only the tracking URL. main -> evaluate -> promote -> serve @production, then the
runs and versions are looked up in PostgreSQL and the artifacts in the bucket.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError
from mlflow import MlflowClient

from tests.conftest import SAMPLE_CORPUS, SAMPLE_EVAL, Server, invoke_cli
from tests.tracking_services import TeamStack, team_tracking_stack

pytestmark = pytest.mark.slow

NAME = "rag-model"
PREFIX = "mlflow-artifacts"  # the folder of the bucket the tracking server writes into
# what a client of the tracking server must not need (and does not get here)
STORE_CREDENTIALS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "MLFLOW_S3_ENDPOINT_URL",
    "PGPASSWORD",
)


@dataclass(frozen=True)
class Started:
    stack: TeamStack
    seconds: float  # PostgreSQL, the S3 server and the tracking server up


@pytest.fixture(scope="module")
def team_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Started]:
    started = time.monotonic()
    with team_tracking_stack(tmp_path_factory.mktemp("team-tracking"), PREFIX) as stack:
        yield Started(stack, time.monotonic() - started)


def test_build_evaluate_promote_and_serve_through_postgres_and_s3(
    team_stack: Started,
    use_tracking_server: Callable[[str, str], None],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stack = team_stack.stack
    started = time.monotonic()
    for name in STORE_CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    # downloads through the tracking server too, not from presigned bucket URLs (MLflow's
    # default with an S3 destination): the bucket is reachable by the server only
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
    use_tracking_server(stack.url, "team")
    laps: dict[str, float] = {}

    def lap(step: str) -> None:
        laps[step] = time.monotonic() - started - sum(laps.values())

    questions = ["--eval-path", str(SAMPLE_EVAL), "--max-questions", "40"]  # plumbing, not quality
    built = invoke_cli("main", "--fake", "--data-path", str(SAMPLE_CORPUS), *questions)
    assert built.exit_code == 0, built.output
    assert "registered rag-model version 1 as @candidate" in built.output
    lap("main")
    evaluated = invoke_cli("evaluate", "--version", "1", *questions)
    assert evaluated.exit_code == 0, evaluated.output
    assert "evaluated rag-model version 1 (run " in evaluated.output
    lap("evaluate")
    promoted = invoke_cli("promote")
    assert promoted.exit_code == 0, promoted.output
    assert "rag-model@production -> version 1: promoted" in promoted.output

    lap("promote")
    server = Server(
        {
            "MLFLOW_TRACKING_URI": stack.url,
            "RAG_MODEL_URI": "models:/rag-model@production",
            "RAG_TEST_LOG": str(tmp_path / "gunicorn.log"),
        },
        workers=1,
    )
    try:
        server.wait_ready()
        answer = requests.post(
            f"{server.url}/v1/query",
            json={"question": "Who was the duke in the battle of Hastings?", "k": 3},
            timeout=60,
        )
    finally:
        server.stop()
    lap("serve")

    client = MlflowClient()
    version = client.get_model_version("rag-model", "1")
    assert answer.status_code == 200, server.logs()
    body = answer.json()
    assert body["model"] == {"name": "rag-model", "version": "1", "run_id": version.run_id}
    assert len(body["sources"]) == 3

    # runs, the version and its aliases are rows in PostgreSQL
    postgres = stack.postgres
    runs = dict(postgres.query("SELECT run_uuid, status FROM runs"))
    assert len(runs) == 2 and set(runs.values()) == {"FINISHED"}  # main, evaluate
    versions = postgres.query(
        "SELECT version, run_id, storage_location FROM model_versions WHERE name = %s", NAME
    )
    assert [row[:2] for row in versions] == [(1, version.run_id)]
    storage_location = versions[0][2]
    aliases = postgres.query(
        "SELECT alias, version FROM registered_model_aliases WHERE name = %s", NAME
    )
    assert sorted(aliases) == [("candidate", 1), ("production", 1)]

    # artifacts went through the tracking server into the bucket, which clients cannot read
    main_run = client.get_run(version.run_id)
    assert main_run.info.artifact_uri.startswith("mlflow-artifacts:/")
    objects = stack.s3.objects()
    experiment_id = main_run.info.experiment_id
    # the version's files, where its PostgreSQL row says they are
    assert storage_location.startswith(f"mlflow-artifacts:/{experiment_id}/models/")
    model_files = f"{PREFIX}/{storage_location.removeprefix('mlflow-artifacts:/')}/"
    assert {f"{model_files}{name}" for name in ("MLmodel", "artifacts/index/manifest.json")} <= (
        set(objects)
    )
    for run_id in runs:
        assert any(key.startswith(f"{PREFIX}/{experiment_id}/{run_id}/") for key in objects)
    assert f"{PREFIX}/{experiment_id}/{version.run_id}/artifacts/evaluation/report.md" in objects
    model_sizes = [len(content) for key, content in objects.items() if key.startswith(model_files)]
    with capsys.disabled():
        print(
            f"\nPostgreSQL + S3 + mlflow server up in {team_stack.seconds:.1f} s; "
            f"main + evaluate + promote + serve through them: {sum(laps.values()):.1f} s "
            f"({', '.join(f'{step} {seconds:.1f}' for step, seconds in laps.items())}); "
            f"model version in the bucket: {len(model_sizes)} files, "
            f"{sum(model_sizes) / 1024:.0f} kB"
        )
    stranger = replace(stack.s3, access_key_id="AKIAIOSFODNN7EXAMPLE").client()
    with pytest.raises(ClientError, match="InvalidAccessKeyId"):  # only the server's key gets in
        stranger.list_objects_v2(Bucket=stack.s3.bucket)

    # no credential value in any run's params or tags, version tags, or any artifact
    secrets = [
        postgres.password,
        stack.s3.access_key_id,
        stack.s3.secret_access_key,
    ]
    recorded = [
        json.dumps([run.data.params, run.data.tags]) for run in client.search_runs([experiment_id])
    ]
    recorded.append(json.dumps(version.tags))
    for secret in secrets:
        assert not [text for text in recorded if secret in text]
        assert not [key for key, content in objects.items() if secret.encode() in content]
    assert not {name for name in STORE_CREDENTIALS if name in os.environ}
