"""Every answer traced: chat (plain and streamed) and micro-batched /v1/query, in process.

The app runs in process (Flask test client) against a SQLite store; the served version's trace
target is set directly (the injected fake version is not in the store). The gunicorn test with
a real tracking server is ``test_tracing_served.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import mlflow
import pytest
from flask import Flask

from rag_model.pipeline import RagPipeline
from serving import create_app
from serving.tracing import TraceTarget
from tests.serving.conftest import TEST_SETTINGS, served_model

pytestmark = pytest.mark.integration

QUESTIONS = ["What is oxygen?", "Who built the bridge?", "What do plants make?"]


@pytest.fixture
def experiment(tracking_store: str) -> str:
    return mlflow.get_experiment_by_name("tests").experiment_id


def traced_app(pipeline: RagPipeline, experiment: str, **settings: Any) -> Flask:
    app = create_app(
        replace(TEST_SETTINGS, trace_sample_ratio=1.0, answer_cache_size=0, **settings),
        served_model(pipeline),
    )
    served = app.extensions["rag_tracing"]
    model = app.extensions["rag_model"].model
    served._targets[(model.name, model.version, model.run_id)] = TraceTarget(experiment, None)
    served.experiment_ids.add(experiment)
    return app


def trace_of(app: Flask, experiment: str, request_id: str) -> Any:
    assert app.extensions["rag_tracing"].exporter().flush(30)
    (trace,) = mlflow.search_traces(
        locations=[experiment],
        filter_string=f"trace.client_request_id = '{request_id}'",
        return_type="list",
    )
    return trace


def tree(trace: Any) -> list[tuple[str, str | None]]:
    by_id = {span.span_id: span.name for span in trace.data.spans}
    return [(s.name, by_id.get(s.parent_id)) for s in trace.data.spans]


TREE = [
    ("rag.answer", None),
    ("rag.embed_query", "rag.answer"),
    ("rag.retrieve", "rag.answer"),
    ("rag.retrieve.dense", "rag.retrieve"),
    ("rag.retrieve.lexical", "rag.retrieve"),
    ("rag.retrieve.fuse", "rag.retrieve"),
    ("rag.generate", "rag.answer"),
]


def chat(stream: bool, question: str = "What is oxygen?") -> dict[str, Any]:
    return {"model": "fake", "messages": [{"role": "user", "content": question}], "stream": stream}


@pytest.fixture
def app(fake_pipeline: RagPipeline, experiment: str) -> Iterator[Flask]:
    yield traced_app(fake_pipeline, experiment)


def test_a_chat_completion_is_traced(app: Flask, experiment: str) -> None:
    response = app.test_client().post(
        "/v1/chat/completions", json=chat(False), headers={"X-Request-ID": "chat-plain"}
    )
    assert response.status_code == 200

    trace = trace_of(app, experiment, "chat-plain")
    assert tree(trace) == TREE
    root = trace.data.spans[0]
    assert root.inputs["question"] == "What is oxygen?"
    assert root.outputs["answer"] == response.json["choices"][0]["message"]["content"]
    assert trace.info.tags["rag.route"] == "/v1/chat/completions"


def test_a_streamed_chat_completion_is_one_trace_closed_when_the_stream_ends(
    app: Flask, experiment: str
) -> None:
    response = app.test_client().post(
        "/v1/chat/completions", json=chat(True), headers={"X-Request-ID": "chat-stream"}
    )
    events = [line[6:] for line in response.get_data(as_text=True).split("\n\n") if line]
    chunks = [json.loads(event) for event in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)

    trace = trace_of(app, experiment, "chat-stream")
    assert tree(trace) == TREE
    root, generate = trace.data.spans[0], trace.data.spans[-1]
    assert root.attributes["stream"] is True
    assert root.inputs == {"question": "What is oxygen?", "k": None, "filter": None}
    assert root.outputs["answer"] == generate.outputs["answer"] == text
    assert root.outputs["citations"] == [s["id"] for s in chunks[-1]["sources"]]
    assert generate.inputs["context_ids"] == root.outputs["citations"]
    assert root.end_time_ns >= generate.end_time_ns >= generate.start_time_ns
    assert trace.info.state.value == "OK"


def test_micro_batched_requests_each_get_their_own_trace(
    fake_pipeline: RagPipeline, experiment: str
) -> None:
    app = traced_app(fake_pipeline, experiment, batch_wait_ms=200)
    client = app.test_client()
    model = app.extensions["rag_model"].model

    def ask(number: int) -> Any:
        question = QUESTIONS[number]
        headers = {"X-Request-ID": f"batched-{number}"}
        return client.post("/v1/query", json={"question": question}, headers=headers)

    with ThreadPoolExecutor(len(QUESTIONS)) as pool:
        responses = list(pool.map(ask, range(len(QUESTIONS))))

    assert all(r.status_code == 200 for r in responses)
    assert model.batcher is not None and max(model.batcher.batch_sizes) > 1  # really batched
    for number, response in enumerate(responses):
        trace = trace_of(app, experiment, f"batched-{number}")
        assert tree(trace) == TREE
        root = trace.data.spans[0]
        assert root.inputs["question"] == QUESTIONS[number]
        assert root.outputs["answer"] == response.json["answer"]
        assert root.attributes["batch_size"] >= 1
        retrieved = next(s for s in trace.data.spans if s.name == "rag.retrieve").outputs
        assert [d["id"] for d in retrieved] == [s["id"] for s in response.json["sources"]]
        generate = trace.data.spans[-1]
        assert generate.inputs["question"] == QUESTIONS[number]
    sizes = {
        trace_of(app, experiment, f"batched-{n}").data.spans[0].attributes["batch_size"]
        for n in range(len(QUESTIONS))
    }
    assert max(sizes) > 1
