"""Served traces to an OpenTelemetry collector (a real OTLP/gRPC receiver in the test).

With MLflow's OTLP settings the exporter sends each recorded trace's spans to the collector,
instead of the tracking server or, with ``MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT``, as well;
a collector that refuses costs a count, never an exception.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import mlflow
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from rag_model import tracing
from rag_model.packaging.mlflow_tracer import TraceContext
from rag_model.packaging.trace_export import TraceExporter
from rag_model.pipeline import RagPipeline

pytestmark = pytest.mark.integration


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace receiver that keeps what it is sent (or refuses it)."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        self.refuse = False

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - OTLP
        if self.refuse:  # not retried by the exporter: the outcome is known at once
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "refused by the test")
        self.received.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[tuple[Any, Any]]:
        """(resource, span) of every span received."""
        return [
            (resource_spans.resource, span)
            for request in self.received
            for resource_spans in request.resource_spans
            for scope in resource_spans.scope_spans
            for span in scope.spans
        ]


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    receiver = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "rag-model-test")
    yield receiver
    server.stop(0)


@pytest.fixture(scope="module")
def pipeline(hybrid_fake_pipeline: RagPipeline) -> RagPipeline:
    return hybrid_fake_pipeline


def export(pipeline: RagPipeline, experiment: str, request_ids: list[str]) -> list[str]:
    """Answer one question per request id under a recording tracer; the export outcomes."""
    outcomes: list[str] = []
    exporter = TraceExporter(on_outcome=outcomes.append)
    for request_id in request_ids:
        context = TraceContext(
            tags={"rag.source": "serving"},
            client_request_id=request_id,
            experiment_id=experiment,
            attributes={"cache_hit": False},
        )
        with tracing.use_tracer(tracing.RecordingTracer(exporter.sink(context))):
            pipeline.answer(f"How do plants make oxygen? ({request_id})", k=2)
    assert exporter.flush(60)
    return outcomes


def in_mlflow(experiment: str) -> set[str]:
    found = mlflow.search_traces(locations=[experiment], return_type="list", flush=True)
    return {trace.info.client_request_id for trace in found}


def test_the_collector_receives_each_trace_instead_of_the_tracking_server(
    pipeline: RagPipeline, tracking_store: str, collector: Collector
) -> None:
    experiment = mlflow.create_experiment("otlp-only")
    assert export(pipeline, experiment, ["a", "b"]) == ["ok", "ok"]
    spans = collector.spans()
    assert len(spans) == 14  # two traces of seven spans
    names = {span.span_id: span.name for _, span in spans}
    tree = {(span.name, names.get(span.parent_span_id)) for _, span in spans}
    assert ("rag.answer", None) in tree and ("rag.retrieve.fuse", "rag.retrieve") in tree
    assert len({span.trace_id for _, span in spans}) == 2
    resource, root = next((r, s) for r, s in spans if s.name == "rag.answer")
    service = {a.key: a.value.string_value for a in resource.attributes}["service.name"]
    assert service == "rag-model-test"
    attributes = {a.key: a.value.string_value for a in root.attributes}
    assert json.loads(attributes["mlflow.spanType"]) == "CHAIN"
    assert json.loads(attributes["mlflow.spanInputs"])["question"].startswith("How do plants")
    assert in_mlflow(experiment) == set()  # MLflow's rule: the collector replaces the server


def test_dual_export_writes_both_with_one_trace_id(
    pipeline: RagPipeline,
    tracking_store: str,
    collector: Collector,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT", "true")
    experiment = mlflow.create_experiment("otlp-dual")
    assert export(pipeline, experiment, ["dual"]) == ["ok"]
    (trace,) = mlflow.search_traces(locations=[experiment], return_type="list", flush=True)
    assert trace.info.client_request_id == "dual"
    (sent,) = {span.trace_id for _, span in collector.spans()}
    assert trace.info.trace_id == f"tr-{sent.hex()}"


def test_a_refusing_collector_is_counted_not_raised(
    pipeline: RagPipeline, tracking_store: str, collector: Collector
) -> None:
    collector.refuse = True
    experiment = mlflow.create_experiment("otlp-refused")
    assert export(pipeline, experiment, ["refused"]) == ["failed"]
