"""MlflowTracer against a real SQLite store: span types, Documents, content switch, pyfunc."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mlflow
import pandas as pd
import pytest

from rag_model import tracing
from rag_model.errors import ConfigError
from rag_model.packaging.mlflow_tracer import (
    TraceContext,
    enable_mlflow_tracing,
    pyfunc_tracer,
    trace_context,
)
from rag_model.pipeline import RagPipeline
from tests.conftest import RegisteredModel

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pipeline(hybrid_fake_pipeline: RagPipeline) -> RagPipeline:
    return hybrid_fake_pipeline


def traces_of(request_id: str) -> list[Any]:
    from mlflow.tracing.fluent import _flush_pending_async_trace_writes

    _flush_pending_async_trace_writes()  # export is asynchronous
    experiment = mlflow.get_experiment_by_name("tests")
    return mlflow.search_traces(
        locations=[experiment.experiment_id],
        filter_string=f"trace.client_request_id = '{request_id}'",
        return_type="list",
    )


def strings(value: Any) -> list[str]:
    """Every string inside ``value`` (dicts, lists, tuples, Documents), keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for pair in value.items() for item in pair for text in strings(item)]
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in strings(item)]
    if hasattr(value, "to_dict"):
        return strings(value.to_dict())
    return []


@pytest.fixture
def traced(tracking_store: str) -> Iterator[None]:
    yield
    tracing.disable_tracing()


@pytest.mark.usefixtures("traced")
@pytest.mark.parametrize("content", [True, False])
def test_an_answer_is_an_mlflow_trace_with_text_only_when_content_is_on(
    pipeline: RagPipeline, content: bool
) -> None:
    enable_mlflow_tracing(content=content)
    request_id = f"content-{content}"
    with trace_context(TraceContext(tags={"rag.source": "test"}, client_request_id=request_id)):
        answer = pipeline.answer("How do plants make oxygen?", k=2)

    (trace,) = traces_of(request_id)
    assert [(s.name, s.span_type) for s in trace.data.spans] == [
        ("rag.answer", "CHAIN"),
        ("rag.embed_query", "EMBEDDING"),
        ("rag.retrieve", "RETRIEVER"),
        ("rag.retrieve.dense", "RETRIEVER"),
        ("rag.retrieve.lexical", "RETRIEVER"),
        ("rag.retrieve.fuse", "RERANKER"),
        ("rag.generate", "CHAIN"),
    ]
    assert trace.info.tags["rag.source"] == "test"
    # what the store gave back, decoded: every span's inputs, outputs and attributes, and the
    # trace's request and response previews
    stored = "\n".join(
        strings([(s.inputs, s.outputs, s.attributes) for s in trace.data.spans])
        + strings(trace.info.to_dict())
    )
    documents = next(s for s in trace.data.spans if s.name == "rag.retrieve").outputs
    assert [d["metadata"]["chunk_id"] for d in documents] == [s.id for s in answer.sources]
    texts = ["How do plants make oxygen?", answer.answer, *(s.text[:60] for s in answer.sources)]
    if content:
        assert documents[0]["page_content"] == answer.sources[0].text
        assert all(text in stored for text in texts)
    else:
        assert documents[0]["page_content"].startswith("[sha256:")
        assert not [text for text in texts if text in stored]


def test_pyfunc_predict_traces_only_when_rag_tracing_is_on(
    fake_registered_model: RegisteredModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_registered_model.activate()
    mlflow.set_experiment("tests")
    rows = pd.DataFrame({"question": ["What is oxygen?", "Who built the bridge?"]})

    monkeypatch.delenv("RAG_TRACING", raising=False)
    before = len(mlflow.search_traces(return_type="list"))
    mlflow.pyfunc.load_model(fake_registered_model.model_uri).predict(rows)
    assert len(mlflow.search_traces(return_type="list", flush=True)) == before

    monkeypatch.setenv("RAG_TRACING", "true")
    mlflow.pyfunc.load_model(fake_registered_model.model_uri).predict(rows)
    traces = mlflow.search_traces(return_type="list", flush=True)
    assert len(traces) == before + 1  # one trace per predict call, not per row
    names = [span.name for span in traces[0].data.spans]
    assert names[0] == "rag.answer" and names.count("rag.generate") == 2


def test_rag_tracing_must_be_a_boolean() -> None:
    assert pyfunc_tracer({"RAG_TRACING": "off"}) is None
    assert pyfunc_tracer({"RAG_TRACING": "1"}) is not None
    with pytest.raises(ConfigError, match="RAG_TRACING must be true or false .* got 'sometimes'"):
        pyfunc_tracer({"RAG_TRACING": "sometimes"})
