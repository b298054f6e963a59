"""Recorded traces written by ``TraceExporter`` read back from a real SQLite store like MLflow's.

The served path records plain span data and builds the MLflow trace in the exporter's thread:
what the store gives back must be what ``MlflowTracer`` (live MLflow spans) gives for the same
answer, and a full queue or a refusing store must cost no request anything but a count.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import mlflow
import pytest

from rag_model import tracing
from rag_model.packaging import trace_export
from rag_model.packaging.mlflow_tracer import MlflowTracer, TraceContext, trace_context
from rag_model.packaging.trace_export import TraceExporter
from rag_model.pipeline import RagPipeline

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pipeline(hybrid_fake_pipeline: RagPipeline) -> RagPipeline:
    return hybrid_fake_pipeline


class Outcomes:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, outcome: str) -> None:
        self.seen.append(outcome)


@pytest.fixture
def experiment(tracking_store: str) -> Iterator[str]:
    yield mlflow.get_experiment_by_name("tests").experiment_id
    tracing.disable_tracing()


def context(experiment: str, request_id: str, model_id: str | None = None) -> TraceContext:
    return TraceContext(
        tags={"rag.source": "serving", "rag.model_name": "m"},
        client_request_id=request_id,
        model_id=model_id,
        experiment_id=experiment,
        attributes={"cache_hit": False},
    )


def trace_of(experiment: str, request_id: str) -> Any:
    (trace,) = mlflow.search_traces(
        locations=[experiment],
        filter_string=f"trace.client_request_id = '{request_id}'",
        return_type="list",
        flush=True,
    )
    return trace


def shape(trace: Any) -> list[tuple[Any, ...]]:
    """Everything of each span but ids and times."""
    by_id = {span.span_id: span.name for span in trace.data.spans}
    return [
        (
            s.name,
            s.span_type,
            by_id.get(s.parent_id),
            s.status.status_code,
            s.inputs,
            s.outputs,
            {k: v for k, v in s.attributes.items() if k != "mlflow.traceRequestId"},
        )
        for s in trace.data.spans
    ]


def test_a_recorded_trace_reads_back_as_the_live_mlflow_trace_of_the_same_answer(
    pipeline: RagPipeline, experiment: str
) -> None:
    model_id = mlflow.initialize_logged_model("traced-model").model_id
    with tracing.use_tracer(MlflowTracer()), trace_context(context(experiment, "live", model_id)):
        pipeline.answer("How do plants make oxygen?", k=2)
    outcomes = Outcomes()
    exporter = TraceExporter(on_outcome=outcomes)
    sink = exporter.sink(context(experiment, "recorded", model_id))
    with tracing.use_tracer(tracing.RecordingTracer(sink)):
        pipeline.answer("How do plants make oxygen?", k=2)
    assert exporter.flush(30) and outcomes.seen == ["ok"]

    live, recorded = trace_of(experiment, "live"), trace_of(experiment, "recorded")
    assert shape(recorded) == shape(live)
    assert shape(recorded)[0][6]["cache_hit"] is False
    assert recorded.info.state == live.info.state
    assert recorded.info.request_preview == live.info.request_preview
    assert recorded.info.response_preview == live.info.response_preview
    assert recorded.info.tags["rag.source"] == "serving"
    assert recorded.info.tags["mlflow.traceName"] == "rag.answer"
    for key in ("mlflow.traceInputs", "mlflow.traceOutputs", "mlflow.modelId"):
        assert recorded.info.trace_metadata[key] == live.info.trace_metadata[key]
    by_model = mlflow.search_traces(locations=[experiment], model_id=model_id, return_type="list")
    assert {t.info.client_request_id for t in by_model} == {"live", "recorded"}
    documents = next(s for s in recorded.data.spans if s.name == "rag.retrieve").outputs
    assert documents[0]["metadata"]["doc_uri"] and documents[0]["page_content"]


def test_an_error_is_an_error_trace_with_the_exception_event(
    pipeline: RagPipeline, experiment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("index went away")

    monkeypatch.setattr(pipeline.retriever.index, "query_many", broken)
    exporter = TraceExporter()
    sink = exporter.sink(context(experiment, "broken"))
    with tracing.use_tracer(tracing.RecordingTracer(sink)), pytest.raises(RuntimeError):
        pipeline.answer("What is oxygen?")
    assert exporter.flush(30)

    trace = trace_of(experiment, "broken")
    assert trace.info.state.value == "ERROR"
    dense = next(s for s in trace.data.spans if s.name == "rag.retrieve.dense")
    assert dense.status.status_code == "ERROR"
    (event,) = dense.events
    assert event.name == "exception"
    assert event.attributes["exception.message"] == "index went away"
    assert "RuntimeError" in event.attributes["exception.stacktrace"]


def test_traces_queued_together_are_all_written(pipeline: RagPipeline, experiment: str) -> None:
    outcomes = Outcomes()
    exporter = TraceExporter(on_outcome=outcomes)
    release = threading.Event()
    writer_many = trace_export._Writer.write_many

    def held(self: Any, traces: Any) -> Any:  # the first write waits: the rest queue up
        release.wait(30)
        return writer_many(self, traces)

    traces: list[list[tracing.SpanRecord]] = []
    with tracing.use_tracer(tracing.RecordingTracer(traces.append)):
        for number in range(12):
            pipeline.answer(f"What is oxygen? ({number})", k=2)
    transactions = []
    transaction = trace_export._BatchingStore.transaction

    def counted(self: Any) -> Any:
        transactions.append(1)
        return transaction(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trace_export._Writer, "write_many", held)
        patch.setattr(trace_export._BatchingStore, "transaction", counted)
        for number, spans in enumerate(traces):
            exporter.submit(context(experiment, f"many-{number}"), spans)
        release.set()
        assert exporter.flush(60)
    assert outcomes.seen == ["ok"] * 12
    assert 1 <= len(transactions) <= 2  # the first alone or with some, the rest in one
    found = mlflow.search_traces(locations=[experiment], return_type="list", max_results=100)
    assert {t.info.client_request_id for t in found} >= {f"many-{n}" for n in range(12)}
    assert all(len(t.data.spans) == 7 for t in found)


def test_a_full_queue_drops_and_a_refusing_store_fails_without_raising(
    pipeline: RagPipeline, experiment: str
) -> None:
    outcomes = Outcomes()
    exporter = TraceExporter(capacity=1, on_outcome=outcomes, linger=0)
    release = threading.Event()
    writer_many = trace_export._Writer.write_many

    def held(self: Any, traces: Any) -> Any:
        release.wait(30)
        return writer_many(self, traces)

    traces: list[list[tracing.SpanRecord]] = []
    with tracing.use_tracer(tracing.RecordingTracer(traces.append)):
        for number in range(3):
            pipeline.answer(f"Who built the bridge? ({number})", k=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trace_export._Writer, "write_many", held)
        exporter.submit(context(experiment, "held"), traces[0])
        assert _wait(lambda: exporter._queue.qsize() == 0)  # the thread holds it
        exporter.submit(context(experiment, "queued"), traces[1])
        exporter.submit(context(experiment, "dropped"), traces[2])  # the queue is full
        assert outcomes.seen == ["dropped"]
        release.set()
        assert exporter.flush(30)
    assert sorted(outcomes.seen) == ["dropped", "ok", "ok"]

    exporter.submit(context("999999", "no-such-experiment"), traces[0])
    assert exporter.flush(30)
    assert outcomes.seen[-1] == "failed"


def _wait(condition: Any, timeout: float = 10) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _rows(store: Any, trace_id: str) -> dict[str, Any]:
    """The trace's rows in the store's three trace tables, its own id replaced by ``ID``."""
    from mlflow.store.tracking.dbmodels.models import SqlTraceInfo, SqlTraceMetadata, SqlTraceTag
    from sqlalchemy import select

    def plain(value: Any) -> Any:
        return value.replace(trace_id, "ID") if isinstance(value, str) else value

    with store.engine.connect() as connection:
        (info,) = connection.execute(
            select(SqlTraceInfo.__table__).where(SqlTraceInfo.request_id == trace_id)
        ).mappings()
        rows: dict[str, Any] = {"info": {k: plain(v) for k, v in info.items()}}
        for name, table in (("tags", SqlTraceTag), ("metadata", SqlTraceMetadata)):
            found = connection.execute(
                select(table.key, table.value).where(table.request_id == trace_id)
            )
            rows[name] = {key: plain(value) for key, value in found}
    return rows


def test_bulk_inserted_rows_are_the_rows_start_trace_writes(
    pipeline: RagPipeline, experiment: str
) -> None:
    recorded: list[list[tracing.SpanRecord]] = []
    with tracing.use_tracer(tracing.RecordingTracer(recorded.append)):
        pipeline.answer("Why is the sky blue?", k=2)
    writer = trace_export._Writer()
    assert writer.batches is not None  # a SQLite store: the bulk path
    bulk = writer.build(context(experiment, "same"), recorded[0]).info
    single = writer.build(context(experiment, "same"), recorded[0]).info
    with writer.batches.transaction():
        writer.batches.insert([bulk])
    writer.client.start_trace(single)

    store = writer.batches.store
    assert _rows(store, bulk.trace_id) == _rows(store, single.trace_id)
    assert _rows(store, bulk.trace_id)["metadata"]["mlflow.trace_schema.version"] == "3"


def test_a_batch_with_a_trace_the_store_refuses_writes_the_others(
    pipeline: RagPipeline, experiment: str
) -> None:
    recorded: list[list[tracing.SpanRecord]] = []
    with tracing.use_tracer(tracing.RecordingTracer(recorded.append)):
        for number in range(3):
            pipeline.answer(f"Where do rivers start? ({number})", k=2)
    deleted = mlflow.create_experiment("deleted-before-export")
    mlflow.delete_experiment(deleted)
    writer = trace_export._Writer()
    outcomes = writer.write_many(
        [
            (context(experiment, "kept-0"), recorded[0]),
            (context(deleted, "refused"), recorded[1]),
            (context(experiment, "kept-1"), recorded[2]),
        ]
    )
    assert outcomes[0] is None and outcomes[2] is None
    assert "must be in the 'active' state" in str(outcomes[1])
    for request_id in ("kept-0", "kept-1"):
        assert len(trace_of(experiment, request_id).data.spans) == 7
