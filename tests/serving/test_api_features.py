"""Batch queries, OpenAI-style chat, OpenAPI, metrics, auth, rate limits and more (fake model).

Also: timeouts, access logs and the playground page, all with an injected fake model.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from rag_model.pipeline import RagPipeline
from serving import create_app
from serving.settings import Settings
from tests.serving.conftest import TEST_SETTINGS, served_model

CHAT = {"model": "fake", "messages": [{"role": "user", "content": "What is oxygen?"}]}


def app_client(pipeline: RagPipeline, **overrides: object) -> FlaskClient:
    settings = Settings(**{**TEST_SETTINGS.__dict__, **overrides})
    return create_app(settings, model=served_model(pipeline)).test_client()


def test_batch_answers_each_question_in_order(client: FlaskClient) -> None:
    body = {"questions": ["What is oxygen?", "Who were the Normans?"], "k": 2}
    response = client.post("/v1/query/batch", json=body)
    assert response.status_code == 200
    results = response.json["results"]
    assert [len(r["sources"]) for r in results] == [2, 2]
    assert results[1]["sources"][0]["document_id"].startswith("Normans-")
    assert response.json["model"]["version"] == "3"


@pytest.mark.parametrize(
    ("body", "status", "field", "message"),
    [
        ({"questions": []}, 422, "questions", "at least 1 item"),
        ({"questions": ["a"] * 5}, 422, "questions", "5 questions; the limit is 4"),
        ({"questions": ["ok", " "]}, 422, "questions.1", "questions.1 must not be empty"),
        ({"questions": "one"}, 422, "questions", "valid list"),
    ],
)
def test_batch_rejects_bad_input(client: FlaskClient, body, status, field, message) -> None:
    response = client.post("/v1/query/batch", json=body)
    assert response.status_code == status
    assert response.json["error"]["field"] == field
    assert message in response.json["error"]["message"]


def test_chat_completion_in_the_openai_shape(client: FlaskClient) -> None:
    body = {
        **CHAT,
        "messages": [{"role": "system", "content": "Be brief."}, *CHAT["messages"]],
        "temperature": 0.2,
        "max_tokens": 50,
    }
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    data = response.json
    assert data["object"] == "chat.completion"
    assert data["model"] == "fake"
    assert data["id"].startswith("chatcmpl-")
    (choice,) = data["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].endswith("[1]")
    assert choice["finish_reason"] == "stop"
    assert data["sources"][0]["document_id"].startswith("Oxygen-")


def test_chat_streams_server_sent_events_ending_in_done(client: FlaskClient) -> None:
    response = client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    events = [line[6:] for line in response.get_data(as_text=True).split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    plain = client.post("/v1/chat/completions", json=CHAT).json
    assert text == plain["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        ({**CHAT, "model": "other"}, 404, "model_not_found", "this server serves 'fake'"),
        (
            {**CHAT, "messages": [{"role": "system", "content": "x"}]},
            422,
            "invalid_request",
            "messages must contain a user message",
        ),
        ({**CHAT, "messages": []}, 422, "invalid_request", "at least 1 item"),
        ({**CHAT, "n": 2}, 422, "invalid_request", "less than or equal to 1"),
        ({"messages": CHAT["messages"]}, 422, "invalid_request", "model: Field required"),
    ],
)
def test_chat_rejects_bad_requests(client: FlaskClient, body, status, code, message) -> None:
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == status
    assert response.json["error"]["code"] == code
    assert message in response.json["error"]["message"]


def test_openapi_describes_every_route_with_the_validating_models(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").json
    assert spec["openapi"] == "3.1.0"
    assert documented_operations(spec) == served_operations(client.application)
    query = spec["paths"]["/v1/query"]["post"]
    assert query["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/QueryRequest"
    }
    schema = spec["components"]["schemas"]["QueryRequest"]
    assert schema["required"] == ["question"]
    assert schema["additionalProperties"] is False
    assert {"422", "413", "503"} <= set(query["responses"])
    assert "securitySchemes" not in spec["components"]


def served_operations(app: Flask) -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every rule of the app: Flask's one route registry."""
    return {
        (re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def documented_operations(spec: dict) -> set[tuple[str, str]]:
    return {(path, method) for path, operations in spec["paths"].items() for method in operations}


def test_openapi_documents_exactly_the_apps_routes_and_which_need_a_key(
    fake_pipeline: RagPipeline,
) -> None:
    client = app_client(fake_pipeline, api_keys="sekret")
    spec = client.get("/openapi.json").json
    assert documented_operations(spec) == served_operations(client.application)
    # the spec's security is what the server does: a GET without a key is 401 iff secured
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method != "get":
                assert operation["security"] == [{"bearer": []}], path
                continue
            status = client.get(path).status_code
            assert (status == 401) == ("security" in operation), (path, status)
            assert str(status) in operation["responses"], (path, status)


def test_metrics_count_requests_by_route_and_status(client: FlaskClient) -> None:
    client.post("/v1/query", json={"question": "What is oxygen?"})
    client.post("/v1/query", json={"question": ""})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'rag_requests_total{method="POST",route="/v1/query",status="200"}' in text
    assert 'rag_requests_total{method="POST",route="/v1/query",status="422"}' in text
    assert 'rag_request_duration_seconds_bucket{le="0.005",route="/v1/query"}' in text
    assert 'rag_model_version_info{version="3"} 1.0' in text
    assert "rag_embedding_cache_misses_total" in text


def test_api_keys_guard_everything_but_probes(fake_pipeline: RagPipeline, tmp_path: Path):
    keys_file = tmp_path / "keys"
    keys_file.write_text("file-key\n\n")
    client = app_client(fake_pipeline, api_keys="env-key, other", api_keys_file=str(keys_file))
    question = {"question": "What is oxygen?"}
    missing = client.post("/v1/query", json=question)
    assert missing.status_code == 401
    assert missing.json["error"] == {
        "code": "unauthorized",
        "message": "missing or invalid API key; send 'Authorization: Bearer <key>'",
    }
    wrong = client.post("/v1/query", json=question, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    for key in ("env-key", "other", "file-key"):
        ok = client.post("/v1/query", json=question, headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 200
    assert client.get("/version").status_code == 401
    assert client.get("/metrics").status_code == 401
    spec = client.get("/openapi.json").json
    assert spec["paths"]["/v1/query"]["post"]["security"] == [{"bearer": []}]


def test_unreadable_keys_file_is_a_clear_error(fake_pipeline: RagPipeline, tmp_path: Path):
    from rag_model.errors import ConfigError

    with pytest.raises(ConfigError, match="RAG_API_KEYS_FILE .*missing: cannot read it"):
        app_client(fake_pipeline, api_keys_file=str(tmp_path / "missing"))


def test_rate_limit_answers_429_json(fake_pipeline: RagPipeline) -> None:
    client = app_client(fake_pipeline, rate_limit="2/minute")
    statuses = [client.post("/v1/query", json={"question": "q"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = client.post("/v1/query", json={"question": "q"})
    assert limited.json["error"]["code"] == "too_many_requests"
    assert client.get("/health").status_code == 200  # probes are never limited


def test_slow_request_is_answered_504_within_the_timeout(
    fake_pipeline: RagPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app_client(fake_pipeline, request_timeout=1)
    model = client.application.extensions["rag_model"].model
    original = model.pipeline.answer

    def slow(*args, **kwargs):
        time.sleep(2)
        return original(*args, **kwargs)

    monkeypatch.setattr(model.pipeline, "answer", slow)
    response = client.post("/v1/query", json={"question": "q"})
    assert response.status_code == 504
    assert response.json["error"] == {
        "code": "timeout",
        "message": "the request took longer than 1 s",
    }


def test_each_request_writes_one_json_access_log_line(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="serving.access"):
        client.post("/v1/query", json={"question": "q"}, headers={"X-Request-ID": "r-42"})
    (line,) = [json.loads(r.message) for r in caplog.records if r.name == "serving.access"]
    assert line["request_id"] == "r-42"
    assert line["route"] == "/v1/query"
    assert line["status"] == 200
    assert line["model_version"] == "3"
    assert line["latency_ms"] > 0


def test_nul_bytes_and_invalid_utf8_are_client_errors(client: FlaskClient) -> None:
    nul = client.post("/v1/query", json={"question": "a\x00b"})
    assert nul.status_code == 422
    assert nul.json["error"]["message"] == "question must not contain NUL characters"
    invalid_utf8 = client.post(
        "/v1/query", data=b'{"question": "\xff"}', content_type="application/json"
    )
    assert invalid_utf8.status_code == 400
    assert invalid_utf8.json["error"]["code"] == "invalid_json"


def test_deeply_nested_json_is_refused(fake_pipeline: RagPipeline) -> None:
    client = app_client(fake_pipeline, max_body_bytes=1_000_000)
    deep = client.post(
        "/v1/query", data="[" * 100_000 + "]" * 100_000, content_type="application/json"
    )
    assert deep.status_code == 400
    assert deep.json["error"] == {"code": "invalid_json", "message": "body is nested too deeply"}


def test_playground_page_is_served(client: FlaskClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert '<form id="ask">' in text
    assert 'fetch("/v1/query"' in text


def test_models_lists_the_served_model_in_openais_shape(client: FlaskClient) -> None:
    response = client.get("/v1/models")
    assert response.status_code == 200
    body = response.json
    assert body["object"] == "list"
    assert [card["id"] for card in body["data"]] == ["fake", "fake@production"]
    assert {card["object"] for card in body["data"]} == {"model"}
    assert all(card["created"] > 1_600_000_000 for card in body["data"])


def test_chat_usage_is_zero_for_a_generator_that_counts_no_tokens(client: FlaskClient) -> None:
    usage = client.post("/v1/chat/completions", json=CHAT).json["usage"]
    assert usage == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def test_chat_folds_the_previous_turn_into_a_follow_up(client: FlaskClient) -> None:
    def top_source(*turns: str) -> str:
        messages = [{"role": "user", "content": turn} for turn in turns]
        body = client.post("/v1/chat/completions", json={"model": "fake", "messages": messages})
        return body.json["sources"][0]["document_id"]

    first = "What gas did Joseph Priestley liberate from mercuric oxide in 1774?"
    assert top_source("Which year was that?") != "Oxygen-003"  # alone: nothing to go on
    assert top_source(first, "Which year was that?") == "Oxygen-003"
