"""API keys are never logged: a real gunicorn server, the right key, a wrong key, odd places.

Its whole output (gunicorn's log, the JSON access lines, tracebacks) and /metrics must then
contain neither key. One place is left out for the wrong key: X-Request-ID is logged and
echoed by design, and the server can recognise (and refuse) only its own keys there.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import RegisteredModel, Server

pytestmark = pytest.mark.slow

RIGHT = f"right-{secrets.token_hex(16)}"
WRONG = f"wrong-{secrets.token_hex(16)}"
QUESTION = {"question": "What is oxygen?"}
CHAT = {"model": "rag-model", "messages": [{"role": "user", "content": "What is oxygen?"}]}


@pytest.fixture(scope="module")
def server(
    fake_registered_model: RegisteredModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    folder = Path(tmp_path_factory.mktemp("keys"))
    keys_file = folder / "keys"
    keys_file.write_text(f"{RIGHT}\n")
    running = Server(
        {
            "MLFLOW_TRACKING_URI": fake_registered_model.tracking_uri,
            "RAG_MODEL_URI": "models:/rag-model@production",
            "RAG_TEST_LOG": str(folder / "server.log"),
            "RAG_API_KEYS": f"other-{secrets.token_hex(8)}",
            "RAG_API_KEYS_FILE": str(keys_file),
            "RAG_RATE_LIMIT": "1000/minute",  # its storage is keyed per API key
        }
    )
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def odd_places(key: str) -> list[tuple[str, str, dict, int]]:
    """(method, path, requests kwargs, status) putting ``key`` where no key belongs."""
    return [
        ("POST", "/v1/query", {"json": QUESTION, "headers": {"Authorization": key}}, 401),
        ("POST", "/v1/query", {"json": QUESTION, "headers": {"Authorization": basic(key)}}, 401),
        (
            "POST",
            "/v1/query",
            {"json": QUESTION, "headers": {"Authorization": f"Token {key}"}},
            401,
        ),
        ("POST", "/v1/query", {"json": QUESTION, "headers": {"X-API-Key": key}}, 401),
        ("POST", "/v1/query", {"json": QUESTION, "headers": {"Cookie": f"api_key={key}"}}, 401),
        ("POST", f"/v1/query?api_key={key}", {"json": QUESTION}, 401),
        ("GET", f"/metrics?key={key}", {}, 401),
        ("GET", f"/v1/{key}", {}, 401),  # the key check comes before routing
        ("POST", "/v1/query", {"json": {**QUESTION, "api_key": key}}, 401),
        ("POST", "/v1/query", {"data": f"api_key={key}"}, 401),
        ("POST", "/v1/query", {"json": QUESTION, "headers": {"User-Agent": key}}, 401),
        (key.upper(), "/v1/query", {}, 400),  # as the HTTP method: gunicorn refuses it
    ]


def test_keys_never_reach_the_logs_or_metrics(server: Server) -> None:
    url = server.url
    # the right key where it belongs: every protected route answers
    assert requests.post(f"{url}/v1/query", json=QUESTION, headers=bearer(RIGHT)).ok
    lower = {"Authorization": f"bearer {RIGHT}"}  # the scheme is case-insensitive
    assert requests.post(f"{url}/v1/query/batch", json={"questions": ["q"]}, headers=lower).ok
    invocation = {"inputs": ["What is oxygen?"], "params": {"k": 2}}
    assert requests.post(f"{url}/invocations", json=invocation, headers=bearer(RIGHT)).ok
    stream = requests.post(
        f"{url}/v1/chat/completions", json={**CHAT, "stream": True}, headers=bearer(RIGHT)
    )
    assert stream.ok and stream.text.endswith("data: [DONE]\n\n")
    assert requests.get(f"{url}/version", headers=bearer(RIGHT)).ok
    # the right key in the body and as the question: answered, never echoed into a log
    question = {"question": f"What is {RIGHT}?"}
    assert requests.post(f"{url}/v1/query", json=question, headers=bearer(RIGHT)).ok
    # a wrong key where a key belongs
    for path, body in [("/v1/query", QUESTION), ("/invocations", invocation)]:
        assert requests.post(f"{url}{path}", json=body, headers=bearer(WRONG)).status_code == 401
    # both keys in odd places: refused (or ignored) and never logged
    for key in (RIGHT, WRONG):
        for method, path, kwargs, status in odd_places(key):
            response = requests.request(method, f"{url}{path}", timeout=30, **kwargs)
            assert response.status_code == status, (method, path, response.text)
            assert response.headers.get("X-Request-ID") != key
    # a request id equal to one of the server's keys is replaced, not echoed
    echoed = requests.get(f"{url}/health", headers={"X-Request-ID": RIGHT})
    assert echoed.status_code == 200
    assert echoed.headers["X-Request-ID"] != RIGHT

    metrics = requests.get(f"{url}/metrics", headers=bearer(RIGHT))
    assert metrics.ok
    server.stop()  # flush every worker's output
    log = server.log.read_text()
    assert '"route": "/v1/query", "status": 401' in log  # the access lines are there
    assert '"status": 200' in log
    assert "Invalid HTTP method (what the client sent is not logged)" in log  # gunicorn's own
    for key in (RIGHT, WRONG):
        assert key not in metrics.text
        assert key not in log
        assert key.upper() not in log and key.upper() not in metrics.text
