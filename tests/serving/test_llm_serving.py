"""Serving a model whose generator is an OpenAI-compatible LLM (a local fake the test starts)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from rag_model.config import RagConfig
from rag_model.generators import make_generator
from rag_model.pipeline import RagPipeline
from serving import create_app
from tests.rag_model.test_llm import KEY, FakeLLM
from tests.serving.conftest import TEST_SETTINGS, served_model


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    server = FakeLLM()
    yield server
    server.server.shutdown()


@pytest.fixture
def client(fake_pipeline: RagPipeline, llm: FakeLLM, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TEST_LLM_KEY", KEY)
    data = fake_pipeline.config.to_dict()
    data["generation"] = {
        "generator": "openai",
        "model": "ok",
        "base_url": llm.url,
        "api_key_env": "TEST_LLM_KEY",
        "max_retries": 0,
    }
    config = RagConfig.from_dict(data)
    generator = make_generator(config.generation, fake_pipeline.embedder)
    pipeline = RagPipeline(config, fake_pipeline.index, fake_pipeline.embedder, generator)
    return create_app(TEST_SETTINGS, model=served_model(pipeline)).test_client()


def test_query_answers_with_the_llm_and_maps_its_citations(client: FlaskClient) -> None:
    body = client.post("/v1/query", json={"question": "Who built the bridge?", "k": 3}).json
    assert body["answer"] == "Brunel built the bridge in 1864 [2]."
    assert body["citations"] == [body["sources"][1]["id"]]


def test_chat_streams_the_llm_pieces_as_they_arrive(client: FlaskClient) -> None:
    response = client.post(
        "/v1/chat/completions",
        json={
            "model": "fake",
            "stream": True,
            "messages": [{"role": "user", "content": "Who built the bridge?"}],
        },
    )
    events = [e[6:] for e in response.get_data(as_text=True).split("\n\n") if e]
    pieces = [json.loads(e)["choices"][0]["delta"].get("content") for e in events[1:-2]]
    assert pieces == ["Brunel built ", "the bridge ", "in 1864 [2]."]
    assert events[-1] == "[DONE]"


def test_an_llm_failure_is_a_502_json_error(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", "wrong")
    # a fresh client reads the (now wrong) key on its first request
    client.application.extensions["rag_model"].model.pipeline.generator._client = None
    response = client.post("/v1/query", json={"question": "Who built the bridge?"})
    assert response.status_code == 502
    assert response.json["error"]["code"] == "generation_failed"
    assert "refused the API key (401); check TEST_LLM_KEY" in response.json["error"]["message"]
    assert "wrong" not in response.get_data(as_text=True)


def test_chat_reports_the_tokens_the_llm_counted(client: FlaskClient) -> None:
    body = {"model": "fake", "messages": [{"role": "user", "content": "Who built the bridge?"}]}
    response = client.post("/v1/chat/completions", json=body)
    assert response.json["usage"] == {
        "prompt_tokens": 57,
        "completion_tokens": 9,
        "total_tokens": 66,
    }


def test_a_follow_up_is_condensed_by_the_llm_before_retrieval(
    client: FlaskClient, llm: FakeLLM
) -> None:
    from tests.rag_model.test_llm import CONDENSED

    messages = [
        {"role": "user", "content": "Tell me about oxygen."},
        {"role": "assistant", "content": "Oxygen is a chemical element."},
        {"role": "user", "content": "What is its atomic number?"},
    ]
    llm.calls.clear()
    response = client.post("/v1/chat/completions", json={"model": "fake", "messages": messages})
    assert response.status_code == 200
    condense, answer = (json.dumps(call["messages"]) for call in llm.calls)
    assert "Rewrite the last question" in condense
    assert "User: Tell me about oxygen.\\nUser: What is its atomic number?" in condense
    assert CONDENSED in answer  # retrieved and answered as the standalone question
    assert response.json["sources"][0]["document_id"].startswith("Oxygen-")


def test_a_standalone_question_is_not_sent_to_the_condenser(
    client: FlaskClient, llm: FakeLLM
) -> None:
    messages = [
        {"role": "user", "content": "Tell me about oxygen."},
        {"role": "user", "content": "Who built the bridge?"},
    ]
    llm.calls.clear()
    client.post("/v1/chat/completions", json={"model": "fake", "messages": messages})
    assert len(llm.calls) == 1
