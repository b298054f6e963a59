"""The REST API with an injected fake model: routes, response shapes and every error."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient

from rag_model.errors import IntegrityError
from rag_model.pipeline import RagPipeline
from serving import create_app
from serving.settings import Settings
from tests.serving.conftest import TEST_SETTINGS, served_model

QUESTION = "Who was the duke in the battle of Hastings?"


def post(client: FlaskClient, path: str, body: object, **kwargs):
    return client.post(path, data=json.dumps(body), content_type="application/json", **kwargs)


def test_health_ready_and_version(client: FlaskClient) -> None:
    assert client.get("/health").json == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json["model"]["version"] == "3"
    version = client.get("/version").json
    assert version["name"] == "fake"
    assert version["alias"] == "production"
    assert version["run_id"] == "run123"
    assert version["uri"] == "models:/fake@production"
    assert version["loaded_at"].endswith("Z")


def test_query_returns_answer_sources_model_and_timings(client: FlaskClient) -> None:
    response = post(client, "/v1/query", {"question": QUESTION, "k": 3})
    assert response.status_code == 200
    body = response.json
    assert body["answer"].endswith("[1]")
    assert len(body["sources"]) == 3
    first = body["sources"][0]
    assert set(first) == {"id", "document_id", "text", "score", "scores", "metadata"}
    assert first["scores"]["fused"] == first["score"]  # hybrid by default: why it ranked
    assert set(first["scores"]) <= {"dense", "lexical", "fused"}
    assert body["citations"] == [first["id"]]
    assert first["metadata"]["document_id"] == first["document_id"]
    assert body["model"] == {"name": "fake", "version": "3", "run_id": "run123"}
    assert set(body["timings"]) == {"embed_ms", "retrieve_ms", "generate_ms", "total_ms"}
    assert response.headers["X-Model-Version"] == "3"


def test_query_uses_model_default_k_filter_and_include_sources(client: FlaskClient) -> None:
    default = post(client, "/v1/query", {"question": QUESTION}).json
    assert len(default["sources"]) == 4  # RagConfig's retrieval.k travels in the model
    filtered = post(client, "/v1/query", {"question": QUESTION, "filter": {"title": "Oxygen"}})
    assert {s["metadata"]["title"] for s in filtered.json["sources"]} == {"Oxygen"}
    bare = post(client, "/v1/query", {"question": QUESTION, "include_sources": False}).json
    assert "sources" not in bare
    assert bare["answer"]


def test_request_id_is_kept_or_made(client: FlaskClient) -> None:
    kept = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert kept.headers["X-Request-ID"] == "abc-123"
    made = client.get("/health")
    assert len(made.headers["X-Request-ID"]) == 32


@pytest.mark.parametrize(
    ("body", "status", "code", "field", "message"),
    [
        ({}, 422, "invalid_request", "question", "question: Field required"),
        ({"question": ""}, 422, "invalid_request", "question", "question must not be empty"),
        ({"question": "   "}, 422, "invalid_request", "question", "question must not be empty"),
        ({"question": 42}, 422, "invalid_request", "question", "valid string"),
        ({"question": "x" * 201}, 422, "invalid_request", "question", "the limit is 200"),
        ({"question": "q", "k": "5"}, 422, "invalid_request", "k", "valid integer"),
        ({"question": "q", "k": 0}, 422, "invalid_request", "k", "between 1 and 10, got 0"),
        ({"question": "q", "k": -1}, 422, "invalid_request", "k", "between 1 and 10, got -1"),
        ({"question": "q", "k": 11}, 422, "invalid_request", "k", "between 1 and 10, got 11"),
        ({"question": "q", "k": 2.5}, 422, "invalid_request", "k", "valid integer"),
        ({"question": "q", "k": None, "extra": 1}, 422, "invalid_request", "extra", "unknown"),
        ({"question": "q", "filter": "title"}, 422, "invalid_request", "filter", "valid dict"),
        (
            {"question": "q", "filter": {"title": {"$bad": 1}}},
            422,
            "invalid_request",
            "filter",
            "filter['title'] is not a valid where clause",
        ),
        (["q"], 422, "invalid_request", None, "request body must be a JSON object"),
    ],
)
def test_query_rejects_bad_input_naming_the_field(
    client: FlaskClient, body: object, status: int, code: str, field: str | None, message: str
) -> None:
    response = post(client, "/v1/query", body)
    assert response.status_code == status
    error = response.json["error"]
    assert error["code"] == code
    assert error.get("field") == field
    assert message in error["message"]


def test_malformed_json_wrong_type_size_method_and_route(client: FlaskClient) -> None:
    bad = client.post("/v1/query", data='{"question": ', content_type="application/json")
    assert bad.status_code == 400
    assert bad.json["error"]["code"] == "invalid_json"
    form = client.post("/v1/query", data="question=x")
    assert form.status_code == 415
    assert "application/json" in form.json["error"]["message"]
    big = post(client, "/v1/query", {"question": "x" * 5000})
    assert big.status_code == 413
    assert big.json["error"] == {
        "code": "payload_too_large",
        "message": "body is larger than the limit of 4096 bytes (RAG_MAX_BODY_BYTES)",
    }
    get = client.get("/v1/query")
    assert get.status_code == 405
    assert get.json["error"]["code"] == "method_not_allowed"
    missing = client.get("/nope")
    assert missing.status_code == 404
    assert missing.json["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": ["question"], "data": [["What is oxygen?"]]}},
        {"dataframe_records": [{"question": "What is oxygen?"}]},
        {"inputs": {"question": ["What is oxygen?"]}},
        {"instances": [{"question": "What is oxygen?"}]},
    ],
)
def test_invocations_accepts_every_mlflow_format(client: FlaskClient, body: dict) -> None:
    response = post(client, "/invocations", {**body, "params": {"k": 2}})
    assert response.status_code == 200
    (prediction,) = response.json["predictions"]
    assert prediction["answer"]
    assert len(prediction["sources"]) == 2
    assert json.loads(prediction["sources"][0]["metadata"])["document_id"]


def test_invocations_params_filter_and_include_sources(client: FlaskClient) -> None:
    body = {
        "dataframe_records": [
            {"question": "What is oxygen?"},
            {"question": "Who were the Normans?"},
        ],
        "params": {"k": 1, "filter": '{"title": "Normans"}'},
    }
    predictions = post(client, "/invocations", body).json["predictions"]
    assert len(predictions) == 2
    assert all(p["sources"][0]["document_id"].startswith("Normans-") for p in predictions)
    bare = post(client, "/invocations", {**body, "params": {"include_sources": False}}).json
    assert all("sources" not in p for p in bare["predictions"])


@pytest.mark.parametrize(
    ("body", "status", "field", "message"),
    [
        ({"question": "q"}, 422, None, "exactly one of dataframe_split"),
        (
            {"inputs": ["q"], "dataframe_records": [{"question": "q"}]},
            422,
            None,
            "got dataframe_records, inputs",
        ),
        ({"inputs": ["q"], "params": {"k": "x"}}, 422, "params.k", "valid integer"),
        ({"inputs": ["q"], "params": {"k": 99}}, 422, "params.k", "between 1 and 10"),
        ({"inputs": ["q"], "params": {"top": 1}}, 422, "params.top", "unknown field"),
        ({"inputs": ["q"], "params": {"filter": "not json"}}, 422, "params.filter", "not valid"),
        (
            {"dataframe_records": [{"q": "x"}]},
            422,
            "dataframe_records.0.question",
            "Field required",
        ),
        (
            {"dataframe_records": [{"question": ""}]},
            422,
            "dataframe_records.0.question",
            "must not be empty",
        ),
        ({"inputs": ["a", "b", "c", "d", "e"]}, 422, "inputs", "5 questions; the limit is 4"),
    ],
)
def test_invocations_rejects_bad_input(
    client: FlaskClient, body: dict, status: int, field: str | None, message: str
) -> None:
    response = post(client, "/invocations", body)
    assert response.status_code == status
    assert response.json["error"].get("field") == field
    assert message in response.json["error"]["message"]


def test_unexpected_error_is_logged_not_returned(
    fake_pipeline: RagPipeline, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    model = served_model(fake_pipeline)
    app = create_app(TEST_SETTINGS, model=model)

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(model.pipeline, "answer", explode)
    response = app.test_client().post(
        "/v1/query", json={"question": "q"}, headers={"X-Request-ID": "req-9"}
    )
    assert response.status_code == 500
    assert response.json == {
        "error": {
            "code": "internal_error",
            "message": "internal error; quote request id req-9 to the operator",
        }
    }
    assert "secret internal detail" not in response.get_data(as_text=True)
    assert "secret internal detail" in caplog.text


def test_model_that_fails_to_load_keeps_server_up_and_not_ready(tmp_path) -> None:
    app = create_app(Settings(model_uri=str(tmp_path / "no-such-model")))
    holder = app.extensions["rag_model"]
    assert holder.wait(60) == "failed"
    client = app.test_client()
    assert client.get("/health").status_code == 200
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert ready.json["error"]["code"] == "not_ready"
    assert "model failed to load" in ready.json["error"]["message"]
    query = client.post("/v1/query", json={"question": "q"})
    assert query.status_code == 503


def test_pipeline_refuses_mismatched_embedder(fake_pipeline: RagPipeline) -> None:
    from rag_model.config import RagConfig
    from rag_model.embedders import HashEmbedder
    from rag_model.generators import EchoGenerator

    with pytest.raises(IntegrityError, match="built with embedder 'hash-embedder'"):
        RagPipeline(RagConfig(), fake_pipeline.index, HashEmbedder(), EchoGenerator())


def test_every_route_answers_with_the_versions_own_k(fake_pipeline: RagPipeline) -> None:
    # as a load-time model_config override gives it: k=2 where the logged version says 4
    config = fake_pipeline.config.with_overrides({"retrieval.k": 2})
    pipeline = RagPipeline(
        config, fake_pipeline.index, fake_pipeline.embedder, fake_pipeline.generator
    )
    client = create_app(TEST_SETTINGS, model=served_model(pipeline)).test_client()
    chat = {"model": "fake", "messages": [{"role": "user", "content": QUESTION}]}

    counts = {
        "query": len(post(client, "/v1/query", {"question": QUESTION}).json["sources"]),
        "batch": len(
            post(client, "/v1/query/batch", {"questions": [QUESTION]}).json["results"][0]["sources"]
        ),
        "invocations": len(
            post(client, "/invocations", {"inputs": [QUESTION]}).json["predictions"][0]["sources"]
        ),
        "chat": len(post(client, "/v1/chat/completions", chat).json["sources"]),
    }

    assert counts == {"query": 2, "batch": 2, "invocations": 2, "chat": 2}


def test_invocations_filter_text_and_object_answer_alike(client: FlaskClient) -> None:
    where = {"title": "Normans"}
    answers = [
        post(client, "/invocations", {"inputs": [QUESTION], "params": {"filter": f}}).json
        for f in (where, json.dumps(where))
    ]

    assert answers[0] == answers[1]
    sources = answers[0]["predictions"][0]["sources"]
    assert sources and {json.loads(s["metadata"])["title"] for s in sources} == {"Normans"}


def test_a_request_filter_is_checked_once(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rag_model.query
    import serving.schemas

    calls: list[object] = []

    def counting(check):  # noqa: ANN001, ANN202
        def wrapped(value):  # noqa: ANN001, ANN202
            calls.append(value)
            return check(value)

        return wrapped

    monkeypatch.setattr(serving.schemas, "check_filter", counting(serving.schemas.check_filter))
    monkeypatch.setattr(rag_model.query, "check_filter", counting(rag_model.query.check_filter))
    body = {"question": QUESTION + " (checked once)", "filter": {"title": "Normans"}}

    response = post(client, "/v1/query", body)

    assert response.status_code == 200 and response.json["sources"]
    assert calls == [{"title": "Normans"}]
