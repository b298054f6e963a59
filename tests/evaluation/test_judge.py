"""The LLM judge's wiring against a local OpenAI-compatible server that the test starts.

The server answers ragas's JSON-mode prompts with an instance of the schema each prompt
carries, so the metrics' arithmetic is known: every statement is supported (faithfulness 1),
every context is useful (precision 1).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request

from evaluation.answer_metrics import AnswerCase
from evaluation.judge import JudgeError, LLMJudge
from rag_model.embedders import HashEmbedder
from rag_model.errors import ConfigError
from tests.conftest import serve_in_thread

KEY = "judge-secret-key-456"


def instance_of(schema: dict[str, Any], defs: dict[str, Any], name: str = "") -> Any:
    """A valid value for a JSON schema: strings, 1 for verdicts, 0 for "noncommittal"."""
    if "$ref" in schema:
        return instance_of(defs[schema["$ref"].split("/")[-1]], defs, name)
    kind = schema.get("type")
    if kind == "object":
        return {key: instance_of(sub, defs, key) for key, sub in schema["properties"].items()}
    if kind == "array":
        return [instance_of(schema["items"], defs, name)]
    if kind == "integer":
        return 0 if name == "noncommittal" else 1
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    return f"a {name}"


class FakeJudge:
    """OpenAI-compatible chat completions that fill in the schema of each prompt."""

    def __init__(self, key: str = KEY) -> None:
        self.key = key
        self.calls: list[dict] = []
        app = Flask("fake-judge")
        app.post("/v1/chat/completions")(self.complete)
        self.server, self.url = serve_in_thread(app)

    def complete(self):  # noqa: ANN201
        body = request.get_json()
        self.calls.append(body)
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return {"error": {"message": "invalid api key"}}, 401
        prompt = body["messages"][0]["content"]
        schema = json.loads(re.search(r"json_schema:\s*(\{.*\})\s*Make sure", prompt, re.S)[1])
        content = json.dumps(instance_of(schema, schema.get("$defs", {})))
        return {
            "id": "c1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
                                                                  "content": content}}
            ],
        }  # fmt: skip


@pytest.fixture(scope="module")
def judge_server() -> Iterator[FakeJudge]:
    server = FakeJudge()
    yield server
    server.server.shutdown()


CASE = AnswerCase(
    question="Where is Normandy?",
    answer="Normandy is in France [1].",
    retrieved_contexts=["Normandy is a region in France.", "Steam engines use steam."],
    reference_answers=["France"],
    reference_contexts=[],
)


def test_judge_scores_through_an_openai_compatible_server(
    judge_server: FakeJudge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGE_KEY", KEY)
    judge = LLMJudge(judge_server.url, "judge-model", "JUDGE_KEY", HashEmbedder())
    scores = judge.score(CASE)
    assert scores["faithfulness"] == 1.0
    assert scores["llm_context_precision"] == pytest.approx(1.0)
    assert 0.0 <= scores["answer_relevancy"] <= 1.0
    assert judge_server.calls and {c["model"] for c in judge_server.calls} == {"judge-model"}
    assert all("[1]" not in json.dumps(c["messages"]) for c in judge_server.calls)
    no_reference = judge.score(AnswerCase(CASE.question, CASE.answer, CASE.retrieved_contexts,
                                          [], []))  # fmt: skip
    assert math.isnan(no_reference["llm_context_precision"])


def test_judge_needs_its_key_in_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUDGE_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"API key in \$JUDGE_KEY; set it"):
        LLMJudge("http://127.0.0.1:1/v1", "m", "JUDGE_KEY")
    with pytest.raises(ConfigError, match="must name an environment variable") as refused:
        LLMJudge("http://127.0.0.1:1/v1", "m", "sk-live-abc123-def")
    assert "sk-live" not in str(refused.value)  # a pasted key is never echoed
    with pytest.raises(ConfigError, match="--judge-model is required"):
        LLMJudge("http://127.0.0.1:1/v1", "", "JUDGE_KEY")


def test_a_wrong_key_fails_the_evaluation_clearly(
    judge_server: FakeJudge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGE_KEY", "wrong")
    judge = LLMJudge(judge_server.url, "judge-model", "JUDGE_KEY", HashEmbedder())
    with pytest.raises(JudgeError, match=rf"LLM judge at {judge_server.url} .*failed: .*401"):
        judge.score(CASE)
