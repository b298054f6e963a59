"""The MLflow side of the tracing seam: the pipeline's spans as an MLflow trace.

``MlflowTracer`` implements ``rag_model.tracing.Tracer`` with ``mlflow.start_span``, so each
answer is one trace (``rag.answer`` CHAIN, ``rag.embed_query`` EMBEDDING, ``rag.retrieve``
RETRIEVER with its ``dense`` / ``lexical`` / ``fuse`` children, ``rag.generate`` LLM or CHAIN).
Retriever outputs become ``mlflow.entities.Document`` (MLflow's retriever schema, shown as a
list of chunks in the UI); token usage becomes MLflow's ``mlflow.chat.tokenUsage``.

Spans nest under the span open in the current context, MLflow's own included: inside
``mlflow.genai.evaluate`` or a caller's ``@mlflow.trace``, ``rag.answer`` is a child of theirs,
never a second trace.

``trace_context`` attaches what a caller knows about the trace (tags, ``client_request_id``, the
LoggedModel id, the experiment) to the root span opened inside the block; the server uses it per
request. Export is MLflow's: asynchronous by default (``MLFLOW_ENABLE_ASYNC_TRACE_LOGGING``).

A pyfunc model's ``predict`` (``mlflow models serve``, ``spark_udf``, ``load_model().predict``)
traces each call when ``RAG_TRACING`` is true (``pyfunc_tracer``); off by default, so batch
scoring writes no traces unless asked to.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import mlflow
from mlflow.entities import Document

from rag_model import tracing
from rag_model.errors import ConfigError

# the env switch for traces from pyfunc predict (mlflow models serve, spark_udf)
PYFUNC_TRACING_ENV = "RAG_TRACING"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}
_DOCUMENT_SPANS = {tracing.RETRIEVER, tracing.RERANKER}
CHAT_USAGE = "mlflow.chat.tokenUsage"  # mlflow.tracing.constant.SpanAttributeKey.CHAT_USAGE


@dataclass(frozen=True)
class TraceContext:
    """What the root span of a trace started inside ``trace_context`` is given."""

    tags: Mapping[str, str] = field(default_factory=dict)
    client_request_id: str | None = None
    model_id: str | None = None  # the LoggedModel: mlflow.search_traces(model_id=...) finds it
    experiment_id: str | None = None  # None: MLflow's active experiment
    attributes: Mapping[str, Any] = field(default_factory=dict)  # on the root span


_context: ContextVar[TraceContext | None] = ContextVar("rag_trace_context", default=None)


@contextmanager
def trace_context(context: TraceContext) -> Iterator[None]:
    """Traces started inside the block carry ``context`` (tags, request id, model id)."""
    token = _context.set(context)
    try:
        yield
    finally:
        _context.reset(token)


class MlflowSpan:
    """A ``rag_model.tracing.Span`` over an MLflow ``LiveSpan``."""

    __slots__ = ("_span", "_type")

    def __init__(self, span: Any, span_type: str) -> None:
        self._span = span
        self._type = span_type

    def set_inputs(self, inputs: Mapping[str, Any]) -> None:
        self._span.set_inputs(dict(inputs))

    def set_outputs(self, outputs: Any) -> None:
        if self._type in _DOCUMENT_SPANS:
            outputs = as_documents(outputs)
        self._span.set_outputs(outputs)

    def set_attribute(self, key: str, value: Any) -> None:
        if key == "token_usage":  # MLflow sums these over the trace and shows them
            key = CHAT_USAGE
        self._span.set_attribute(key, value)


def as_documents(outputs: Any) -> Any:
    """Lists of retriever-schema dicts as ``mlflow.entities.Document``; anything else as is."""
    if isinstance(outputs, list) and outputs and all(isinstance(o, list) for o in outputs):
        return [as_documents(inner) for inner in outputs]
    if isinstance(outputs, list) and all(
        isinstance(o, dict) and "page_content" in o for o in outputs
    ):
        return [Document(**o) for o in outputs]
    return outputs


class MlflowTracer:
    """``rag_model.tracing.Tracer`` that records spans with ``mlflow.start_span``."""

    def __init__(self, experiment_id: str | None = None) -> None:
        self.experiment_id = experiment_id  # for roots outside any trace_context

    @contextmanager
    def trace(
        self,
        name: str,
        span_type: str,
        inputs: Mapping[str, Any] | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Iterator[MlflowSpan]:
        root = mlflow.get_current_active_span() is None
        context = _context.get() if root else None
        experiment_id = (context.experiment_id if context else None) or self.experiment_id
        destination = _experiment(experiment_id) if root and experiment_id else None
        with mlflow.start_span(
            name,
            span_type=span_type,
            attributes=dict(attributes or {}),
            trace_destination=destination,
        ) as live:
            if inputs:
                live.set_inputs(dict(inputs))
            if context is not None:
                _apply(live, context)
            yield MlflowSpan(live, span_type)


def replay(spans: Sequence[tracing.SpanRecord]) -> None:
    """Spans recorded by a ``RecordingTracer`` as MLflow spans under the active span.

    Each keeps its own start and end time, inputs, outputs (retriever outputs as
    ``Document``), attributes and error, as ``MlflowTracer`` would have made them live. The
    evaluation records while it times an answer and replays after, so the latency it reports
    is the pipeline's, not the pipeline's plus MLflow's span bookkeeping.
    """
    from mlflow.entities import SpanEvent, SpanStatus, SpanStatusCode

    above = mlflow.get_current_active_span()
    live: list[Any] = []
    for record in spans:
        attributes = {
            (CHAT_USAGE if key == "token_usage" else key): value
            for key, value in record.attributes.items()
        }
        live.append(
            mlflow.start_span_no_context(
                record.name,
                span_type=record.span_type,
                parent_span=above if record.parent is None else live[record.parent],
                inputs=dict(record.inputs) if record.inputs else None,
                attributes=attributes,
                start_time_ns=record.start_ns,
            )
        )
    for record, span in reversed(list(zip(spans, live, strict=True))):
        status = SpanStatus(SpanStatusCode.OK)
        if record.error is not None:
            kind, message, stack = record.error
            span.add_event(
                SpanEvent(
                    "exception",
                    timestamp=record.end_ns,
                    attributes={
                        "exception.type": kind,
                        "exception.message": message,
                        "exception.stacktrace": stack,
                    },
                )
            )
            status = SpanStatus(SpanStatusCode.ERROR, f"{kind}: {message}")
        outputs = record.outputs
        if record.span_type in _DOCUMENT_SPANS:
            outputs = as_documents(outputs)
        span.end(outputs=outputs, status=status, end_time_ns=record.end_ns)


def _experiment(experiment_id: str) -> Any:
    from mlflow.entities.trace_location import MlflowExperimentLocation

    return MlflowExperimentLocation(experiment_id=experiment_id)


def _apply(live: Any, context: TraceContext) -> None:
    for key, value in context.attributes.items():
        live.set_attribute(key, value)
    mlflow.update_current_trace(
        tags=dict(context.tags) or None,
        client_request_id=context.client_request_id,
        model_id=context.model_id,
    )


def enable_mlflow_tracing(content: bool = True, experiment_id: str | None = None) -> MlflowTracer:
    """Trace every answer of this process to MLflow (``rag_model.tracing.enable_tracing``)."""
    tracer = MlflowTracer(experiment_id)
    tracing.enable_tracing(tracer, content=content)
    return tracer


def pyfunc_tracer(environ: Mapping[str, str] | None = None) -> MlflowTracer | None:
    """The tracer a pyfunc ``predict`` uses: one when ``RAG_TRACING`` is true, else None.

    Raises:
        ConfigError: ``RAG_TRACING`` is not a boolean.
    """
    raw = (os.environ if environ is None else environ).get(PYFUNC_TRACING_ENV, "")
    value = raw.strip().lower()
    if value in _FALSE:
        return None
    if value not in _TRUE:
        raise ConfigError(
            f"{PYFUNC_TRACING_ENV} must be true or false (1/0, yes/no, on/off), got {raw!r}"
        )
    return MlflowTracer()
