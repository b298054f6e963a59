"""The OpenAI-compatible generator against a small OpenAI-compatible server the test starts."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from flask import Flask, Response, request

from rag_model.config import GenerationConfig, RagConfig
from rag_model.documents import RetrievedChunk
from rag_model.errors import GenerationError
from rag_model.llm import OpenAIGenerator
from tests.conftest import serve_in_thread

KEY = "test-secret-key-123"
ANSWER = "Brunel built the bridge in 1864 [2]."
CHUNKS = [
    RetrievedChunk("c-iron", "iron.txt", "Iron is a metal.", 0.5),
    RetrievedChunk("c-bridge", "bridge.txt", "Brunel built the bridge in 1864.", 0.9),
]


CONDENSED = "What is the atomic number of oxygen?"
USAGE = {"prompt_tokens": 57, "completion_tokens": 9, "total_tokens": 66}


class FakeLLM:
    """OpenAI-compatible /v1/chat/completions; the requested model picks the behaviour."""

    def __init__(self, key: str = KEY) -> None:
        self.key = key
        self.calls: list[dict] = []
        self.flaky_failures = 0
        app = Flask("fake-llm")
        app.post("/v1/chat/completions")(self.complete)
        self.server, self.url = serve_in_thread(app)

    def complete(self):  # noqa: ANN201
        body = request.get_json()
        self.calls.append(body)
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return {"error": {"message": "invalid api key", "type": "auth"}}, 401
        behaviour = body["model"]
        if behaviour == "flaky" and self.flaky_failures < 1:
            self.flaky_failures += 1
            return {"error": {"message": "slow down"}}, 429, {"Retry-After": "0"}
        if behaviour == "slow":
            time.sleep(3)
        prompt = json.dumps(body.get("messages"))
        if "Rewrite the last question" in prompt:  # the follow-up condenser
            content = CONDENSED
        else:
            content = ANSWER
        if behaviour == "fails-after-warm-up" and "warm-up question" not in prompt:
            return {"error": {"message": "the model is overloaded"}}, 500
        if behaviour == "slow-after-warm-up" and "warm-up question" not in prompt:
            time.sleep(10)
        if behaviour == "malformed":
            return {"unexpected": True}
        if body.get("stream"):
            return Response(self._events(behaviour), mimetype="text/event-stream")
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": behaviour,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": content},
                }
            ],
            "usage": USAGE,
        }

    @staticmethod
    def _events(model: str) -> Iterator[str]:
        for piece in ("Brunel built ", "the bridge ", "in 1864 [2]."):
            chunk = {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
            }
            yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    server = FakeLLM()
    yield server
    server.server.shutdown()


def generator(llm: FakeLLM, model: str = "ok", **overrides: object) -> OpenAIGenerator:
    config = GenerationConfig(
        generator="openai", model=model, base_url=llm.url, api_key_env="TEST_LLM_KEY", **overrides
    )
    return OpenAIGenerator(config)


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", KEY)


def test_answer_cites_passages_mapped_back_to_chunk_ids(llm: FakeLLM) -> None:
    generation = generator(llm).generate("Who built the bridge?", CHUNKS)
    assert generation.text == ANSWER
    assert generation.citations == ["c-bridge"]
    prompt = llm.calls[-1]["messages"][0]["content"]
    assert "[1] Iron is a metal.\n\n[2] Brunel built the bridge in 1864." in prompt
    assert prompt.endswith("Question: Who built the bridge?\nAnswer:")
    assert llm.calls[-1]["temperature"] == 0.0


def test_streaming_yields_pieces_as_they_arrive(llm: FakeLLM) -> None:
    pieces = list(generator(llm).stream("Who built the bridge?", CHUNKS))
    assert pieces == ["Brunel built ", "the bridge ", "in 1864 [2]."]
    assert llm.calls[-1]["stream"] is True


def test_rate_limit_is_retried_then_succeeds(llm: FakeLLM) -> None:
    before = len(llm.calls)
    assert generator(llm, "flaky", max_retries=2).generate("q", CHUNKS).text == ANSWER
    assert len(llm.calls) - before == 2  # one 429, then the answer


def test_a_wrong_key_is_a_clear_error(llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", "wrong")
    with pytest.raises(GenerationError, match="refused the API key \\(401\\); check TEST_LLM_KEY"):
        generator(llm).generate("q", CHUNKS)


def test_a_slow_server_times_out_instead_of_hanging(llm: FakeLLM) -> None:
    with pytest.raises(GenerationError, match="did not answer within 1 s"):
        generator(llm, "slow", timeout_seconds=1, max_retries=0).generate("q", CHUNKS)


def test_a_malformed_response_is_a_clear_error(llm: FakeLLM) -> None:
    with pytest.raises(GenerationError, match="malformed response from http://127.0.0.1"):
        generator(llm, "malformed").generate("q", CHUNKS)


def test_no_key_and_no_local_server_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config = GenerationConfig(generator="openai")
    with pytest.raises(GenerationError, match="set the environment variable OPENAI_API_KEY"):
        OpenAIGenerator(config).generate("q", CHUNKS)


def test_the_key_is_never_part_of_the_config() -> None:
    config = RagConfig.from_dict(
        {"generation": {"generator": "openai", "api_key_env": "TEST_LLM_KEY"}}
    )
    assert KEY not in json.dumps(config.to_dict())
    assert config.generation.api_key_env == "TEST_LLM_KEY"
