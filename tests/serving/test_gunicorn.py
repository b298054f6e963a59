"""A real gunicorn server (2 workers) loading models:/rag-model@production from the registry."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.chromium import HEADLESS_CHROMIUM
from tests.conftest import (
    RegisteredModel,
    Server,
    free_port,
    serving_production,
    wait_until_http_ok,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shared_copies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this module's server keeps the host's working copies (rag_model.chroma_share)."""
    return tmp_path_factory.mktemp("chroma-shared")


@pytest.fixture(scope="module")
def server(
    minilm_model: RegisteredModel, tmp_path_factory: pytest.TempPathFactory, shared_copies: Path
) -> Iterator[Server]:
    with serving_production(
        minilm_model,
        tmp_path_factory.mktemp("gunicorn"),
        RAG_CHROMA_SHARED_DIR=str(shared_copies),
    ) as running:
        yield running


def test_serves_the_production_version(server: Server, minilm_model: RegisteredModel) -> None:
    version = requests.get(f"{server.url}/version", timeout=10).json()
    assert version["name"] == "rag-model"
    assert version["version"] == minilm_model.version
    assert version["alias"] == "production"
    assert requests.get(f"{server.url}/health", timeout=10).json() == {"status": "ok"}


def test_both_workers_open_one_shared_copy_of_the_snapshot(
    server: Server, shared_copies: Path
) -> None:
    from rag_model.chroma_share import USERS_NAME

    deadline = time.monotonic() + 120  # the second worker may still be loading
    while time.monotonic() < deadline and len(_holders(shared_copies)) < 2:
        time.sleep(0.2)
    copies = [entry for entry in shared_copies.iterdir() if entry.is_dir()]
    assert len(copies) == 1, copies  # one copy on the host, not one per worker
    assert (copies[0] / USERS_NAME).is_file()
    assert len(_holders(shared_copies)) == 2  # each worker holds it (a shared flock)


def _holders(root: Path) -> set[int]:
    """Pids holding a shared flock on a users file under ``root`` (from /proc/locks)."""
    inodes = {entry.stat().st_ino for entry in root.glob("*/users.lock")}
    pids = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  READ  1234 fd:01:5678 0 EOF" (a blocked waiter has "->")
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK" or fields[3] != "READ":
            continue
        if int(fields[5].rsplit(":", 1)[1]) in inodes:
            pids.add(int(fields[4]))
    return pids


def test_query_answers_from_the_right_document(server: Server) -> None:
    response = requests.post(
        f"{server.url}/v1/query",
        json={"question": "Who was the duke in the battle of Hastings?", "k": 3},
        timeout=60,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["sources"][0]["document_id"] == "Normans-020"
    assert "Hastings" in body["answer"] and "[1]" in body["answer"]
    assert body["model"]["version"] == response.headers["X-Model-Version"]


def test_invocations_speaks_the_mlflow_protocol(server: Server) -> None:
    response = requests.post(
        f"{server.url}/invocations",
        json={
            "dataframe_split": {"columns": ["question"], "data": [["What is oxygen used for?"]]},
            "params": {"k": 2, "include_sources": True},
        },
        timeout=60,
    )
    assert response.status_code == 200
    (prediction,) = response.json()["predictions"]
    assert prediction["sources"][0]["document_id"].startswith("Oxygen-")


def test_bad_requests_get_json_errors_naming_the_field(server: Server) -> None:
    bad_k = requests.post(f"{server.url}/v1/query", json={"question": "q", "k": 0}, timeout=10)
    assert bad_k.status_code == 422
    assert bad_k.json()["error"]["field"] == "k"
    empty = requests.post(f"{server.url}/v1/query", json={"question": " "}, timeout=10)
    assert empty.json()["error"] == {
        "code": "invalid_request",
        "message": "question must not be empty",
        "field": "question",
    }
    broken = requests.post(
        f"{server.url}/v1/query", data="{", headers={"Content-Type": "application/json"}, timeout=10
    )
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "invalid_json"
    assert "Traceback" not in broken.text


def test_openai_sdk_works_against_the_server(server: Server) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    messages = [{"role": "user", "content": "Who was the duke in the battle of Hastings?"}]
    completion = client.chat.completions.create(model="rag-model", messages=messages)
    answer = completion.choices[0].message.content
    assert "Hastings" in answer
    stream = client.chat.completions.create(model="rag-model", messages=messages, stream=True)
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert len(pieces) >= 3  # role chunk, the cited sentences, the final chunk
    assert "".join(pieces) == answer


def test_metrics_aggregate_all_workers_and_openapi_is_served(server: Server) -> None:
    for _ in range(6):  # two workers: requests land on both
        requests.post(f"{server.url}/v1/query", json={"question": "What is oxygen?"}, timeout=60)
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    line = next(
        row
        for row in text.splitlines()
        if row.startswith('rag_requests_total{method="POST",route="/v1/query",status="200"}')
    )
    assert float(line.split()[-1]) >= 6
    assert "rag_model_version_info" in text
    spec = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    assert "/v1/chat/completions" in spec["paths"]


@pytest.mark.skipif(
    not shutil.which("chromium"), reason="needs Debian's chromium (.ci/run installs it)"
)
def test_playground_answers_in_headless_chromium(server: Server, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            *HEADLESS_CHROMIUM,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            f"{server.url}/?q=Who%20was%20the%20duke%20in%20the%20battle%20of%20Hastings%3F",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dom = done.stdout
    assert 'data-state="answered"' in dom, done.stderr[-2000:]
    assert "Hastings" in dom.split('id="answer">', 1)[1].split("</div>", 1)[0]
    assert "Normans-020" in dom
    assert "served by rag-model version 1" in dom


def test_sigterm_lets_in_flight_requests_finish_and_refuses_new_connections(
    minilm_model: RegisteredModel, tmp_path: Path
) -> None:
    running = Server(
        {
            "MLFLOW_TRACKING_URI": minilm_model.tracking_uri,
            "RAG_MODEL_URI": "models:/rag-model@production",
            "RAG_TEST_LOG": str(tmp_path / "server.log"),
        },
        workers=1,
    )
    try:
        running.wait_ready()
        # 64 long questions: seconds of work in one request
        filler = " and what did the Normans, the Huguenots and the Victorians do then" * 5
        questions = [f"What happened in the year {1000 + i}{filler}?" for i in range(64)]
        outcome: dict[str, object] = {}

        def slow_batch() -> None:
            started = time.monotonic()
            response = requests.post(
                f"{running.url}/v1/query/batch", json={"questions": questions}, timeout=120
            )
            outcome["status"] = response.status_code
            outcome["results"] = len(response.json()["results"])
            print(f"\nthe batch took {time.monotonic() - started:.1f} s")

        thread = threading.Thread(target=slow_batch)
        thread.start()
        time.sleep(0.5)  # the batch is now in flight
        running.process.send_signal(signal.SIGTERM)
        time.sleep(0.2)  # the master closes its listener and passes SIGTERM to the worker
        # new connections while the batch is still running: refused or reset at once, never
        # left waiting in the listen queue of a worker that will not accept them (a hang)
        attempts: list[tuple[bool, str]] = []
        while thread.is_alive() or not attempts:
            in_flight = thread.is_alive()
            try:
                response = requests.get(f"{running.url}/health", timeout=5)
                attempts.append((in_flight, f"answered {response.status_code}"))
            except requests.Timeout as exc:
                attempts.append((in_flight, f"hung: {exc!r}"))
            except requests.ConnectionError as exc:
                attempts.append((in_flight, "refused" if "refused" in str(exc) else repr(exc)))
            time.sleep(0.2)
        thread.join(120)
        during = sum(in_flight for in_flight, _ in attempts)
        results = sorted({result for _, result in attempts})
        print(
            f"\n{len(attempts)} new connections after SIGTERM, {during} during the batch: {results}"
        )
        assert outcome == {"status": 200, "results": 64}
        assert any(in_flight for in_flight, _ in attempts)  # tried while the batch ran
        assert {result for _, result in attempts} == {"refused"}
        assert running.process.wait(60) == 0
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{running.url}/health", timeout=5)
    finally:
        running.stop()


def test_the_model_also_serves_under_mlflow_models_serve(
    minilm_model: RegisteredModel, tmp_path: Path
) -> None:
    port = free_port()
    # mlflow models serve execs `uvicorn` from PATH: the venv's bin must be on it even when
    # the venv is not activated (CI runs the tests with .venv/bin/python directly)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": minilm_model.tracking_uri,
        "MLFLOW_REGISTRY_URI": minilm_model.tracking_uri,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    serve_log = tmp_path / "mlflow-serve.log"
    log = serve_log.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            "models:/rag-model@production",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_http_ok(f"http://127.0.0.1:{port}/ping", process, serve_log)
        response = requests.post(
            f"http://127.0.0.1:{port}/invocations",
            json={
                "dataframe_records": [{"question": "What is oxygen used for?"}],
                "params": {"k": 2},
            },
            timeout=120,
        )
        assert response.status_code == 200, (tmp_path / "mlflow-serve.log").read_text()[-3000:]
        (prediction,) = response.json()["predictions"]
        assert prediction["sources"][0]["document_id"].startswith("Oxygen-")
        assert len(prediction["sources"]) == 2
    finally:
        process.terminate()
        process.wait(30)
