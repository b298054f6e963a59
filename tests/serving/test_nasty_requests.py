"""Nasty requests, one table: each gets its exact status, error code and field, and a clear message.

Run against the Flask test client (fast); tests/serving/test_fuzz_api.py sends the ones that
behave differently through a real socket to a real gunicorn server.
"""

from __future__ import annotations

import io
import json
from typing import Any, NamedTuple

import pytest
from flask.testing import FlaskClient

from rag_model.pipeline import RagPipeline
from serving import create_app
from serving.settings import Settings
from tests.serving.conftest import served_model

# the default body limit (1 MiB), so a 100k-character question reaches the question check
SETTINGS = Settings(max_k=10, max_batch=4, max_question_chars=200)
JSON = "application/json"
CHAT = {"model": "fake", "messages": [{"role": "user", "content": "What is oxygen?"}]}
Q = {"question": "What is oxygen?"}


class Row(NamedTuple):
    method: str
    path: str
    body: bytes | None
    content_type: str | None
    status: int
    code: str | None  # None: a success
    field: str | None = None
    message: str = ""  # a part of the error message


def row(
    method: str,
    path: str,
    body: Any,
    status: int,
    code: str | None,
    field: str | None = None,
    message: str = "",
    content_type: str | None = JSON,
) -> Row:
    """A table row; ``body`` is JSON-encoded unless it is already bytes (or None)."""
    raw = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    return Row(method, path, raw, content_type, status, code, field, message)


def deep(depth: int) -> dict[str, Any]:
    """A filter with ``depth`` levels of $and."""
    clause: dict[str, Any] = {"title": "Oxygen"}
    for _ in range(depth):
        clause = {"$and": [clause, {"paragraph": 1}]}
    return clause


ROWS = {
    # --- the body is not strict JSON: 400 invalid_json
    "invalid-json": row("POST", "/v1/query", b'{"question": ', 400, "invalid_json", None,
                        "body is not valid JSON: Expecting value"),
    "trailing-garbage": row("POST", "/v1/query", b'{"question": "q"} x', 400, "invalid_json",
                            None, "Extra data"),
    "empty-body": row("POST", "/v1/query", b"", 400, "invalid_json", None, "Expecting value"),
    "nan": row("POST", "/v1/query", b'{"question": "q", "k": NaN}', 400, "invalid_json", None,
               "NaN is not a JSON value"),
    "infinity": row("POST", "/invocations", b'{"inputs": ["q"], "params": {"k": -Infinity}}',
                    400, "invalid_json", None, "-Infinity is not a JSON value"),
    "number-overflows-to-infinity": row(
        "POST", "/v1/query", b'{"question": "q", "filter": {"year": {"$gt": 1e400}}}', 400,
        "invalid_json", None, "the number 1e400 is out of range"),
    "integer-of-5000-digits": row("POST", "/v1/query",
                                  b'{"question": "q", "k": ' + b"9" * 5000 + b"}", 400,
                                  "invalid_json", None, "an integer of 5000 digits"),
    "deeply-nested-json": row("POST", "/v1/query", b"[" * 100_000 + b"]" * 100_000, 400,
                              "invalid_json", None, "body is nested too deeply"),
    "invalid-utf8": row("POST", "/v1/query", b'{"question": "\xff"}', 400, "invalid_json", None,
                        "body is not valid UTF-8: byte 0xff at position 14"),
    "utf16-body": row("POST", "/v1/query", json.dumps(Q).encode("utf-16"), 400,
                      "invalid_json", None, "body is not valid UTF-8: byte 0xff at position 0"),
    "utf8-encoded-surrogate": row("POST", "/v1/query", b'{"question": "\xed\xa0\x80"}', 400,
                                  "invalid_json", None, "not valid UTF-8: byte 0xed"),
    "unpaired-surrogate-escape": row("POST", "/v1/query", {"question": "a\ud800b"}, 400,
                                     "invalid_json", None, "unpaired surrogate \\ud800"),
    "raw-nul-byte-in-a-string": row("POST", "/v1/query", b'{"question": "a\x00b"}', 400,
                                    "invalid_json", None, "Invalid control character"),
    "chat-invalid-json": row("POST", "/v1/chat/completions", b"{", 400, "invalid_json"),
    "invocations-invalid-json": row("POST", "/invocations", b"[1,", 400, "invalid_json"),
    # --- not JSON at all, or too big: 415, 413
    "form-body": row("POST", "/v1/query", b"question=x", 415, "unsupported_media_type", None,
                     "send Content-Type: application/json (got application/x-www-form-urlencoded)",
                     "application/x-www-form-urlencoded"),
    "text-plain": row("POST", "/v1/query", Q, 415, "unsupported_media_type", None,
                      "(got text/plain)", "text/plain"),
    "no-content-type": row("POST", "/invocations", {"inputs": ["q"]}, 415,
                           "unsupported_media_type", None, "(got none)", None),
    "chat-form-body": row("POST", "/v1/chat/completions", b"x=1", 415, "unsupported_media_type",
                          content_type="application/x-www-form-urlencoded"),
    "body-over-the-limit": row("POST", "/v1/query", {"question": "x" * 1_100_000}, 413,
                               "payload_too_large", None,
                               "body is larger than the limit of 1048576 bytes"),
    "batch-body-over-the-limit": row("POST", "/v1/query/batch",
                                     {"questions": ["x" * 600_000] * 2}, 413,
                                     "payload_too_large"),
    # --- questions
    "nul-in-question": row("POST", "/v1/query", {"question": "a\x00b"}, 422, "invalid_request",
                           "question", "question must not contain NUL characters"),
    "empty-question": row("POST", "/v1/query", {"question": ""}, 422, "invalid_request",
                          "question", "question must not be empty"),
    "whitespace-question": row("POST", "/v1/query", {"question": " \t\n\u3000\u2028"}, 422,
                               "invalid_request", "question", "question must not be empty"),
    "100k-character-question": row("POST", "/v1/query", {"question": "x" * 100_000}, 422,
                                   "invalid_request", "question",
                                   "question is 100000 characters; the limit is 200"),
    "question-not-a-string": row("POST", "/v1/query", {"question": ["q"]}, 422,
                                 "invalid_request", "question", "valid string"),
    "missing-question": row("POST", "/v1/query", {"k": 1}, 422, "invalid_request", "question",
                            "question: Field required"),
    "unknown-field": row("POST", "/v1/query", {**Q, "top_k": 3}, 422, "invalid_request",
                         "top_k", "top_k: unknown field"),
    "body-is-an-array": row("POST", "/v1/query", ["q"], 422, "invalid_request", None,
                            "request body must be a JSON object"),
    "body-is-null": row("POST", "/v1/query", b"null", 422, "invalid_request", None,
                        "request body must be a JSON object"),
    # --- k
    "k-0": row("POST", "/v1/query", {**Q, "k": 0}, 422, "invalid_request", "k",
               "k must be between 1 and 10, got 0"),
    "k-minus-1": row("POST", "/v1/query", {**Q, "k": -1}, 422, "invalid_request", "k",
                     "k must be between 1 and 10, got -1"),
    "k-10-to-the-9": row("POST", "/v1/query", {**Q, "k": 10**9}, 422, "invalid_request", "k",
                         "k must be between 1 and 10, got 1000000000"),
    "k-string-5": row("POST", "/v1/query", {**Q, "k": "5"}, 422, "invalid_request", "k",
                      "k: Input should be a valid integer"),
    "k-true": row("POST", "/v1/query", {**Q, "k": True}, 422, "invalid_request", "k",
                  "k: Input should be a valid integer"),
    "k-2.5": row("POST", "/v1/query", {**Q, "k": 2.5}, 422, "invalid_request", "k",
                 "k: Input should be a valid integer"),
    "k-4000-digits": row("POST", "/v1/query", {**Q, "k": 10**3999}, 422, "invalid_request",
                         "k", "got 10000000000000000000... (4000 digits)"),
    "k-null-is-the-default": row("POST", "/v1/query", {**Q, "k": None}, 200, None),
    "k-5.0-is-5": row("POST", "/v1/query", {**Q, "k": 5.0}, 200, None),
    "batch-k-0": row("POST", "/v1/query/batch", {"questions": ["q"], "k": 0}, 422,
                     "invalid_request", "k", "k must be between 1 and 10, got 0"),
    "invocations-k-0": row("POST", "/invocations", {"inputs": ["q"], "params": {"k": 0}}, 422,
                           "invalid_request", "params.k",
                           "params.k must be between 1 and 10, got 0"),
    "chat-k-string": row("POST", "/v1/chat/completions", {**CHAT, "k": "5"}, 422,
                         "invalid_request", "k", "k: Input should be a valid integer"),
    # --- filters
    "filter-unknown-operator": row(
        "POST", "/v1/query", {**Q, "filter": {"title": {"$regex": "Ox.*"}}}, 422,
        "invalid_request", "filter",
        "filter['title'] is not a valid where clause: Additional properties are not allowed "
        "('$regex' was unexpected)"),
    "filter-unknown-logical-operator": row(
        "POST", "/v1/query", {**Q, "filter": {"$not": [{"title": "Oxygen"}]}}, 422,
        "invalid_request", "filter", "filter['$not'] is not a valid where clause"),
    "filter-two-fields": row("POST", "/v1/query", {**Q, "filter": {"title": "O", "year": 1}},
                             422, "invalid_request", "filter",
                             "filter is not a valid where clause"),
    "filter-and-of-one": row("POST", "/v1/query",
                             {**Q, "filter": {"$and": [{"title": "Oxygen"}]}}, 422,
                             "invalid_request", "filter", "filter['$and'] is not a valid"),
    "filter-empty-in": row("POST", "/v1/query", {**Q, "filter": {"title": {"$in": []}}}, 422,
                           "invalid_request", "filter", "filter['title']['$in'] is not a valid"),
    "filter-gt-string": row("POST", "/v1/query", {**Q, "filter": {"year": {"$gt": "1900"}}},
                            422, "invalid_request", "filter", "'1900' is not of type 'number'"),
    "filter-null-value": row("POST", "/v1/query", {**Q, "filter": {"title": None}}, 422,
                             "invalid_request", "filter", "filter['title'] is not a valid"),
    "filter-nested-too-deeply": row("POST", "/v1/query", {**Q, "filter": deep(3)}, 422,
                                    "invalid_request", "filter",
                                    "filter['$and'][0]['$and'][0]['$and'] is not a valid"),
    "filter-not-an-object": row("POST", "/v1/query", {**Q, "filter": "title"}, 422,
                                "invalid_request", "filter",
                                "filter: Input should be a valid dictionary"),
    "filter-nested-twice-is-fine": row("POST", "/v1/query", {**Q, "filter": deep(2)}, 200, None),
    "filter-empty-is-none": row("POST", "/v1/query", {**Q, "filter": {}}, 200, None),
    "filter-mixed-numbers-is-fine": row(
        "POST", "/v1/query", {**Q, "filter": {"paragraph": {"$in": [1, 2.5]}}}, 200, None),
    "batch-filter-unknown-operator": row(
        "POST", "/v1/query/batch", {"questions": ["q"], "filter": {"t": {"$like": "x"}}}, 422,
        "invalid_request", "filter", "('$like' was unexpected)"),
    "invocations-filter-text-unknown-operator": row(
        "POST", "/invocations", {"inputs": ["q"], "params": {"filter": '{"t": {"$like": 1}}'}},
        422, "invalid_request", "params.filter", "('$like' was unexpected)"),
    "invocations-filter-text-not-json": row(
        "POST", "/invocations", {"inputs": ["q"], "params": {"filter": "title=Oxygen"}}, 422,
        "invalid_request", "params.filter", "filter is not valid JSON"),
    "chat-filter-unknown-operator": row(
        "POST", "/v1/chat/completions", {**CHAT, "filter": {"t": {"$exists": True}}}, 422,
        "invalid_request", "filter", "('$exists' was unexpected)"),
    # --- batches
    "batch-over-the-limit": row("POST", "/v1/query/batch", {"questions": ["q"] * 5}, 422,
                                "batch_too_large", "questions",
                                "5 questions; the limit is 4 per request (RAG_MAX_BATCH)"),
    "batch-empty": row("POST", "/v1/query/batch", {"questions": []}, 422, "invalid_request",
                       "questions", "at least 1 item"),
    "batch-blank-member": row("POST", "/v1/query/batch", {"questions": ["q", " "]}, 422,
                              "invalid_request", "questions.1", "questions.1 must not be empty"),
    "batch-100k-member": row("POST", "/v1/query/batch", {"questions": ["q", "x" * 100_000]},
                             422, "invalid_request", "questions.1",
                             "questions.1 is 100000 characters"),
    "invocations-records-over-the-limit": row(
        "POST", "/invocations", {"dataframe_records": [Q] * 5}, 422, "batch_too_large",
        "dataframe_records", "5 questions; the limit is 4"),
    "invocations-split-over-the-limit": row(
        "POST", "/invocations",
        {"dataframe_split": {"columns": ["question"], "data": [["q"]] * 5}}, 422,
        "batch_too_large", "dataframe_split", "5 questions; the limit is 4"),
    "invocations-no-data-key": row("POST", "/invocations", {"params": {"k": 1}}, 422,
                                   "invalid_request", None,
                                   "body must have exactly one of dataframe_split, "
                                   "dataframe_records, inputs, instances (plus optional "
                                   "'params'); got none"),
    "invocations-two-data-keys": row("POST", "/invocations",
                                     {"inputs": ["q"], "instances": ["q"]}, 422,
                                     "invalid_request", None, "got inputs, instances"),
    "invocations-null-inputs": row("POST", "/invocations", {"inputs": None}, 422,
                                   "invalid_request", "inputs", "inputs must not be null"),
    "invocations-number-question": row("POST", "/invocations", {"inputs": [5]}, 422,
                                       "invalid_request", "inputs",
                                       "inputs: Input should be a valid string"),
    "invocations-null-question": row("POST", "/invocations",
                                     {"dataframe_records": [{"question": None}]}, 422,
                                     "invalid_request", "dataframe_records.0.question",
                                     "valid string"),
    "invocations-blank-question": row("POST", "/invocations", {"instances": [" "]}, 422,
                                      "invalid_request", "instances.0",
                                      "instances.0 must not be empty"),
    "invocations-other-column": row("POST", "/invocations",
                                    {"dataframe_split": {"columns": ["q"], "data": [["x"]]}},
                                    422, "invalid_request", "dataframe_split.columns.0",
                                    "Input should be 'question'"),
    "invocations-params-not-an-object": row("POST", "/invocations",
                                            {"inputs": ["q"], "params": []}, 422,
                                            "invalid_request", "params",
                                            "valid dictionary"),
    # --- chat
    "chat-unknown-model": row("POST", "/v1/chat/completions", {**CHAT, "model": "gpt-4"}, 404,
                              "model_not_found", "model",
                              "model 'gpt-4' is not served here; this server serves 'fake'"),
    "chat-no-user-message": row("POST", "/v1/chat/completions",
                                {**CHAT, "messages": [{"role": "system", "content": "x"}]}, 422,
                                "invalid_request", "messages",
                                "messages must contain a user message"),
    "chat-no-messages": row("POST", "/v1/chat/completions", {**CHAT, "messages": []}, 422,
                            "invalid_request", "messages", "at least 1 item"),
    "chat-blank-question": row("POST", "/v1/chat/completions",
                               {**CHAT, "messages": [{"role": "user", "content": "\t "}]}, 422,
                               "invalid_request", "messages.0.content",
                               "messages.0.content must not be empty"),
    "chat-100k-question": row("POST", "/v1/chat/completions",
                              {**CHAT, "messages": [{"role": "user", "content": "x" * 100_000}]},
                              422, "invalid_request", "messages.0.content",
                              "messages.0.content is 100000 characters; the limit is 200"),
    "chat-null-content": row("POST", "/v1/chat/completions",
                             {**CHAT, "messages": [{"role": "user", "content": None}]}, 422,
                             "invalid_request", "messages.0.content", "valid string"),
    "chat-parts-without-text": row(
        "POST", "/v1/chat/completions",
        {**CHAT, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 422,
        "invalid_request", "messages.0.content", "messages.0.content has no text part"),
    "chat-unknown-role": row("POST", "/v1/chat/completions",
                             {**CHAT, "messages": [{"role": "robot", "content": "x"}]}, 422,
                             "invalid_request", "messages.0", "Input tag 'robot'"),
    "chat-stream-yes": row("POST", "/v1/chat/completions", {**CHAT, "stream": "yes"}, 422,
                           "invalid_request", "stream", "valid boolean"),
    "chat-n-2": row("POST", "/v1/chat/completions", {**CHAT, "n": 2}, 422, "invalid_request",
                    "n", "less than or equal to 1"),
    "chat-text-parts-are-joined": row(
        "POST", "/v1/chat/completions",
        {**CHAT, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is"}, {"type": "image_url"},
            {"type": "text", "text": "oxygen?"}]}]}, 200, None),
    # --- unknown routes and methods
    "unknown-route": row("GET", "/nope", None, 404, "not_found", None,
                         "no route /nope; the routes are listed at /openapi.json"),
    "unknown-v1-route": row("POST", "/v1/answer", Q, 404, "not_found", None,
                            "no route /v1/answer"),
    "nul-in-the-path": row("GET", "/v1/%00", None, 404, "not_found", None, "no route /v1/\x00"),
    "get-query": row("GET", "/v1/query", None, 405, "method_not_allowed", None,
                     "GET is not allowed on /v1/query; use OPTIONS, POST"),
    "delete-invocations": row("DELETE", "/invocations", None, 405, "method_not_allowed", None,
                              "DELETE is not allowed on /invocations"),
    "put-health": row("PUT", "/health", Q, 405, "method_not_allowed", None,
                      "use GET, HEAD, OPTIONS"),
    "get-chat": row("GET", "/v1/chat/completions", None, 405, "method_not_allowed"),
    "patch-batch": row("PATCH", "/v1/query/batch", {"questions": ["q"]}, 405,
                       "method_not_allowed"),
}  # fmt: skip


@pytest.fixture(scope="module")
def nasty_client(fake_pipeline: RagPipeline) -> FlaskClient:
    return create_app(SETTINGS, model=served_model(fake_pipeline)).test_client()


@pytest.mark.parametrize("case", ROWS.values(), ids=ROWS.keys())
def test_nasty_request_gets_its_exact_status_and_error(nasty_client: FlaskClient, case: Row):
    headers = {"Content-Type": case.content_type} if case.content_type else {}
    response = nasty_client.open(case.path, method=case.method, data=case.body, headers=headers)
    assert response.status_code == case.status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    body = response.get_json()
    if case.code is None:
        assert "error" not in body
        return
    error = body["error"]
    assert set(body) == {"error"}
    assert error["code"] == case.code
    assert error.get("field") == case.field
    assert case.message in error["message"]
    assert "\n" not in error["message"] and "Traceback" not in error["message"]


def test_405_tells_the_allowed_methods(nasty_client: FlaskClient) -> None:
    allowed = nasty_client.get("/v1/query").headers["Allow"]
    assert set(allowed.split(", ")) == {"POST", "OPTIONS"}
    allowed = nasty_client.delete("/health").headers["Allow"]
    assert set(allowed.split(", ")) == {"GET", "HEAD", "OPTIONS"}


@pytest.mark.parametrize(
    ("size", "status", "code"),
    [(2_000_000, 413, "payload_too_large"), (1_048_576, 413, "payload_too_large")],
    ids=["2-MB", "16-bytes-past-the-limit"],
)
def test_a_chunked_body_past_the_limit_is_refused_not_cut(
    nasty_client: FlaskClient, size: int, status: int, code: str
) -> None:
    # no Content-Length (Transfer-Encoding: chunked): werkzeug alone would cut the body at
    # the limit and parse the rest, answering 400 "unterminated string" (or worse, 200)
    body = b'{"question": "' + b"x" * size + b'"}'
    response = nasty_client.post(
        "/v1/query",
        input_stream=io.BytesIO(body),
        content_type=JSON,
        environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
    )
    assert response.status_code == status
    assert response.json["error"]["code"] == code


def test_a_chunked_body_within_the_limit_is_read(nasty_client: FlaskClient) -> None:
    response = nasty_client.post(
        "/v1/query",
        input_stream=io.BytesIO(json.dumps(Q).encode()),
        content_type=JSON,
        environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
    )
    assert response.status_code == 200


def test_odd_request_ids_and_methods_never_reach_headers_logs_or_metrics(
    nasty_client: FlaskClient,
) -> None:
    odd = nasty_client.get("/health", headers={"X-Request-ID": "id with spaces; rm -rf"})
    assert odd.headers["X-Request-ID"] != "id with spaces; rm -rf"
    assert len(odd.headers["X-Request-ID"]) == 32  # a fresh uuid instead
    kept = nasty_client.get("/health", headers={"X-Request-ID": "trace:1.2-3_4"})
    assert kept.headers["X-Request-ID"] == "trace:1.2-3_4"
    brew = nasty_client.open("/v1/query", method="BREW")
    assert brew.status_code == 405
    metrics = nasty_client.get("/metrics").get_data(as_text=True)
    assert 'rag_requests_total{method="other",route="unmatched",status="405"}' in metrics
    assert "BREW" not in metrics
