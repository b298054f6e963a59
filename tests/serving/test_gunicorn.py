"""A real gunicorn server (2 workers) loading models:/rag-model@production from the registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import RegisteredModel, Server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(
    minilm_model: RegisteredModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    log = Path(tmp_path_factory.mktemp("gunicorn")) / "server.log"
    running = Server(
        {
            "MLFLOW_TRACKING_URI": minilm_model.tracking_uri,
            "RAG_MODEL_URI": "models:/rag-model@production",
            "RAG_TEST_LOG": str(log),
        }
    )
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def test_serves_the_production_version(server: Server, minilm_model: RegisteredModel) -> None:
    version = requests.get(f"{server.url}/version", timeout=10).json()
    assert version["name"] == "rag-model"
    assert version["version"] == minilm_model.version
    assert version["alias"] == "production"
    assert requests.get(f"{server.url}/health", timeout=10).json() == {"status": "ok"}


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
