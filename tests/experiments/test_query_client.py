"""``rag-model query`` as a client: key from a variable, filter, k, --json; one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from flask import Flask, Response, request

from experiments.cli import cli
from tests.conftest import serve_in_thread

ANSWER = {
    "answer": "Oxygen is used in steelmaking. [1]",
    "citations": ["c1"],
    "sources": [{"id": "c1", "document_id": "Oxygen-003", "text": "Steel...", "score": 0.8}],
    "model": {"name": "rag-model", "version": "7", "run_id": "r1"},
}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, list[dict]]]:
    seen: list[dict] = []
    app = Flask("fake-rag")

    @app.post("/v1/query")
    def answer():  # noqa: ANN202
        body = request.get_json()
        seen.append({"body": body, "auth": request.headers.get("Authorization")})
        if body["question"] == "html":
            return Response("<html>Bad gateway</html>", 502, mimetype="text/html")
        if request.headers.get("Authorization") != "Bearer sekret":
            return {"error": {"code": "unauthorized", "message": "missing or invalid API key"}}, 401
        return ANSWER

    http, url = serve_in_thread(app)
    yield url.removesuffix("/v1"), seen
    http.shutdown()


def ask(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, ["query", *args], env=env)


def test_sends_the_key_filter_and_k_and_prints_the_answer(server) -> None:
    url, seen = server
    result = ask(
        "What is oxygen used for?",
        *("--url", url, "--api-key-env", "TEAM_KEY", "--k", "3"),
        *("--filter", '{"title": "Oxygen"}'),
        env={"TEAM_KEY": "sekret"},
    )
    assert result.exit_code == 0, result.output
    assert seen[-1] == {
        "body": {"question": "What is oxygen used for?", "k": 3, "filter": {"title": "Oxygen"}},
        "auth": "Bearer sekret",
    }
    assert "A: Oxygen is used in steelmaking. [1]" in result.output
    assert "[1] Oxygen-003 (score 0.800)" in result.output
    assert "Served by rag-model version 7 (run r1)" in result.output


def test_json_prints_the_servers_answer(server) -> None:
    url, _ = server
    result = ask("q", "--url", url, "--api-key-env", "K", "--json", env={"K": "sekret"})
    assert result.exit_code == 0
    assert json.loads(result.output) == ANSWER


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["q"], {}, "/v1/query answered 401 UNAUTHORIZED: unauthorized: missing or invalid"),
        (["html"], {}, "answered 502 BAD GATEWAY with a body that is not JSON (text/html"),
        (["q", "--api-key-env", "NOPE"], {}, "--api-key-env NOPE: that environment variable"),
        (["q", "--filter", "{title"], {}, "Invalid value for --filter: not JSON"),
        (["q", "--filter", "[1]"], {}, "--filter: must be a JSON object"),
    ],
)
def test_every_refusal_is_one_line(server, args, env, message) -> None:
    url, _ = server
    result = ask(*args, "--url", url, env=env)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    # one error line (a bad option also gets click's usage lines above it)
    assert [line for line in result.output.splitlines() if "Error" in line] == [
        result.output.strip().splitlines()[-1]
    ]


def test_an_unreachable_server_is_one_line() -> None:
    result = ask("q", "--url", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert result.output.strip() == "Error: cannot reach http://127.0.0.1:9: ConnectionError"
