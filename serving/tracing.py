"""Served traces: which requests are traced, what each trace carries, and what export lost.

A share ``RAG_TRACE_SAMPLE_RATIO`` of the requests to ``/v1/query`` (micro-batched or not),
``/v1/query/batch``, ``/invocations`` and ``/v1/chat/completions`` (streamed or not) is traced:
one MLflow trace per request (the pipeline's span tree, ``docs/tracing.md``), tagged with
``rag.source=serving``, the model's name, version, alias and run id, the serving instance and,
with named API keys, ``rag.api_key_name``; linked to the version's LoggedModel (so
``mlflow.search_traces(model_id=...)`` finds it) and to the request by ``client_request_id`` =
its ``X-Request-ID``. Traces go to ``RAG_TRACE_EXPERIMENT`` or else the run's own experiment.

A sampled request only records plain span data (``rag_model.tracing.RecordingTracer``: names,
types, times, the inputs and outputs as given) and queues the finished trace; the worker's
exporter thread (``rag_model.packaging.trace_export.TraceExporter``) builds the MLflow trace
and writes it, several per transaction when they queue up. A request never waits for the
tracking server. What could not be written is counted in ``/metrics``
(``rag_trace_exports_total{outcome="failed"|"dropped"}``): a failed write (tracking server down
or refusing; logged) or a full queue (``trace_export.QUEUE_SIZE`` traces waiting: dropped).
Where MLflow's OTLP settings name an OpenTelemetry collector, the exporter sends the same
traces there (instead of the tracking server, or to both with
``MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT``), counted the same way.

With a ratio of 0 (or no ``MLFLOW_TRACKING_URI``), MLflow is never imported by a worker.

Each worker remembers the last ``RECENT_REQUESTS`` request ids it answered and whether they were
traced, so that ``POST /v1/feedback`` can answer 409 "not traced" for a request it sampled
out; a request answered by another worker (or replica) is unknown here and answers 404.
"""

from __future__ import annotations

import contextvars
import logging
import os
import random
import socket
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, g, request
from prometheus_client import Counter

from rag_model import tracing
from rag_model.tracing import SpanRecord
from serving.settings import Settings

logger = logging.getLogger("serving")

# the routes whose answers are traced
TRACED_ENDPOINTS = frozenset(
    {"api.query", "api.query_batch", "api.invocations", "chat.chat_completions"}
)
_ONE_QUESTION = frozenset({"api.query", "chat.chat_completions"})  # may hit the answer cache
RECENT_REQUESTS = 10_000  # request ids per worker remembered for feedback's 409

TRACED = Counter("rag_traces_total", "requests answered under a trace", ["sampled"])
EXPORTS = Counter(
    "rag_trace_exports_total",
    "traces handed to the tracking server: ok, failed (not accepted) or dropped (queue full)",
    ["outcome"],
)


@dataclass(frozen=True)
class TraceTarget:
    """Where one served version's traces go."""

    experiment_id: str
    model_id: str | None  # the version's LoggedModel


class RecentRequests:
    """A bounded map request id -> why it was not traced (None: traced), oldest forgotten first."""

    def __init__(self, size: int = RECENT_REQUESTS) -> None:
        self.size = size
        self._seen: OrderedDict[str, str | None] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, request_id: str, untraced_because: str | None) -> None:
        with self._lock:
            self._seen[request_id] = untraced_because
            self._seen.move_to_end(request_id)
            while len(self._seen) > self.size:
                self._seen.popitem(last=False)

    def get(self, request_id: str) -> tuple[bool, str | None]:
        """(seen here, why it was not traced or None)."""
        with self._lock:
            return request_id in self._seen, self._seen.get(request_id)


class ServedTracing:
    """One worker's tracing: sampling, the tracer, targets per version, remembered requests."""

    def __init__(self, settings: Settings, rng: random.Random | None = None) -> None:
        self.ratio = settings.trace_sample_ratio
        self.content = settings.trace_content
        self.experiment_name = settings.trace_experiment
        self.instance = settings.instance_name or f"{socket.gethostname()}:{os.getpid()}"
        self.enabled = self.ratio > 0 and bool(os.environ.get("MLFLOW_TRACKING_URI"))
        if self.ratio > 0 and not self.enabled:
            logger.warning(
                "RAG_TRACE_SAMPLE_RATIO is %g but MLFLOW_TRACKING_URI is not set: no traces",
                self.ratio,
            )
        self.recent = RecentRequests()
        self.experiment_ids: set[str] = set()  # every experiment this worker traced into
        self._targets: dict[tuple[Any, ...], TraceTarget | None] = {}
        self._exporter: Any = None
        self._lock = threading.Lock()
        self._random = rng or random.Random()

    def exporter(self) -> Any:
        """This worker's ``TraceExporter`` (MLflow imported on first use)."""
        if self._exporter is None:
            from rag_model.packaging.trace_export import TraceExporter

            self._exporter = TraceExporter(on_outcome=lambda o: EXPORTS.labels(o).inc())
        return self._exporter

    def prepare(self, model: Any) -> TraceTarget | None:
        """Resolve where ``model``'s traces go (experiment, LoggedModel); None: not traced.

        Called when a version is loaded (the watcher's thread), so no request waits for it.
        """
        if not self.enabled or model is None:
            return None
        key = (model.name, model.version, model.run_id)
        with self._lock:
            if key in self._targets:
                return self._targets[key]
        try:
            target = self._resolve(model)
        except Exception as exc:  # the version is served anyway, untraced
            logger.warning(
                "cannot resolve the trace experiment of version %s (%s: %s); its requests "
                "are not traced",
                model.version,
                type(exc).__name__,
                exc,
            )
            target = None
        with self._lock:
            self._targets[key] = target
            if target is not None:
                self.experiment_ids.add(target.experiment_id)
        return target

    def _resolve(self, model: Any) -> TraceTarget:
        from mlflow import MlflowClient

        client = MlflowClient()
        model_id = None
        if model.name and model.version:
            version = client.get_model_version(model.name, model.version)
            model_id = version.model_id or logged_model_id(version.source)
        if self.experiment_name:
            found = client.get_experiment_by_name(self.experiment_name)
            experiment_id = (
                found.experiment_id if found else client.create_experiment(self.experiment_name)
            )
        elif model.run_id:
            experiment_id = client.get_run(model.run_id).info.experiment_id
        else:
            raise ValueError("the version has no run id; set RAG_TRACE_EXPERIMENT")
        self.exporter()
        return TraceTarget(experiment_id, model_id)

    def target(self, model: Any) -> TraceTarget | None:
        """The resolved target of ``model`` (None until ``prepare`` ran, or if it failed)."""
        return self._targets.get((model.name, model.version, model.run_id))

    @contextmanager
    def request(self, model: Any) -> Iterator[None]:
        """Answer the current request traced or not (sampled here), and remember which."""
        if not self.enabled or request.endpoint not in TRACED_ENDPOINTS:
            yield
            return
        request_id = g.get("request_id", "")
        target = self.target(model)
        if target is None:
            reason = "the trace experiment of its version could not be resolved (see the log)"
        elif self._random.random() >= self.ratio:
            reason = f"it was sampled out (RAG_TRACE_SAMPLE_RATIO is {self.ratio:g})"
        else:
            reason = None
        sampled = reason is None
        self.recent.add(request_id, reason)
        g.rag_traced = sampled
        TRACED.labels(str(sampled).lower()).inc()
        if not sampled:
            yield
            return
        from rag_model.packaging.mlflow_tracer import TraceContext

        tags = {
            "rag.source": "serving",
            "rag.model_name": str(model.name or ""),
            "rag.model_version": str(model.version or ""),
            "rag.alias": str(model.alias or ""),
            "rag.run_id": str(model.run_id or ""),
            "rag.instance": self.instance,
            "rag.route": request.path,
        }
        key_name = getattr(g, "rag_key_name", None)
        if key_name:
            tags["rag.api_key_name"] = str(key_name)
        context = TraceContext(
            tags=tags,
            client_request_id=request_id or None,
            model_id=target.model_id,  # type: ignore[union-attr]
            experiment_id=target.experiment_id,  # type: ignore[union-attr]
            attributes={"cache_hit": False} if request.endpoint in _ONE_QUESTION else {},
        )
        tracer = tracing.RecordingTracer(self.exporter().sink(context))
        with tracing.use_tracer(tracer, self.content):
            yield


def logged_model_id(source: str | None) -> str | None:
    """The LoggedModel id in a version's source ``models:/m-...``.

    MLflow leaves ``ModelVersion.model_id`` empty for versions registered from that URI.
    """
    if source and source.startswith("models:/m-") and "/" not in source[len("models:/") :]:
        return source[len("models:/") :]
    return None


def init_tracing(app: Flask, settings: Settings) -> ServedTracing:
    """This worker's ``ServedTracing``, kept in ``app.extensions["rag_tracing"]``."""
    served = ServedTracing(settings)
    app.extensions["rag_tracing"] = served
    return served


@contextmanager
def traced_request(model: Any) -> Iterator[None]:
    """``ServedTracing.request`` of this app, if it has one."""
    served = current_app.extensions.get("rag_tracing")
    if served is None:
        yield
        return
    with served.request(model):
        yield


def trace_cached_answer(question: str, k: int | None, where: Any, result: dict) -> None:
    """A sampled /v1/query answered from the answer cache: a one-span trace saying so."""
    if not g.get("rag_traced"):
        return
    with tracing.span("rag.answer", tracing.CHAIN) as span:
        span.set_attribute("cache_hit", True)
        span.set_inputs({"question": tracing.content(question), "k": k, "filter": where})
        span.set_outputs(
            {
                "answer": tracing.content(str(result.get("answer", ""))),
                "citations": list(result.get("citations") or []),
            }
        )


def stream_trace(question: str, k: int | None, where: Any) -> StreamTrace | None:
    """A streamed chat answer's trace, if this request is sampled (call inside ``served()``)."""
    if not g.get("rag_traced") or not tracing.is_tracing_enabled():
        return None
    return StreamTrace(contextvars.copy_context(), question, k, where)


class StreamTrace:
    """The trace of an answer streamed after its route returned.

    The request's tracing context is copied while the route runs, and every traced step runs
    in that copy (``Context.run``): ``rag.answer`` is opened before retrieval and closed when
    the stream ends (finished, failed or abandoned by the client), with ``rag.generate``
    around the streamed pieces.
    """

    def __init__(self, context: contextvars.Context, question: str, k: int | None, where: Any):
        self.context = context
        self._root = context.run(tracing.span, "rag.answer", tracing.CHAIN)
        root = context.run(self._root.__enter__)
        root.set_attribute("stream", True)
        root.set_attribute("cache_hit", False)
        inputs = {"question": question, "k": k, "filter": where}
        self._inputs = context.run(_with_content, inputs)
        root.set_inputs(self._inputs)
        self._span = root
        self._generate: Any = None

    def run(self, work: Any, *args: Any) -> Any:
        """``work(*args)`` inside the trace."""
        return self.context.run(work, *args)

    def generating(self, generator: Any, sources: list[Any]) -> None:
        """Open ``rag.generate`` (the pieces are made while the stream is read)."""
        self._generate = self.context.run(tracing.span, "rag.generate", generator.span_type)
        span = self.context.run(self._generate.__enter__)
        span.set_attribute("stream", True)
        span.set_inputs(
            {"question": self._inputs["question"], "context_ids": [s.id for s in sources]}
        )
        self._generating = span

    def finish(self, text: str, citations: list[str], error: BaseException | None) -> None:
        """Close the spans with the streamed answer (``error``: why the stream stopped)."""
        failure = (type(error), error, error.__traceback__) if error is not None else (None,) * 3
        answer = self.context.run(tracing.content, text)
        if self._generate is not None:
            self._generating.set_outputs({"answer": answer, "citations": citations})
            self.context.run(self._generate.__exit__, *failure)
        self._span.set_outputs({"answer": answer, "citations": citations})
        self.context.run(self._root.__exit__, *failure)


def _with_content(inputs: dict[str, Any]) -> dict[str, Any]:
    return {**inputs, "question": tracing.content(inputs["question"])}


def split_batch(spans: list[SpanRecord], position: int, count: int) -> list[SpanRecord]:
    """One request's trace out of the trace of a micro-batch of ``count`` questions.

    The batch's ``rag.answer`` becomes this request's: its question, its answer, the batch's
    timing and ``batch_size``. The shared steps (embedding, the Chroma query) stay, with their
    per-question lists cut to this question's; of the steps made once per question (BM25,
    fusion, generation) only this question's stay.
    """
    if count == 1:
        spans[0].attributes["batch_size"] = 1
        return spans
    occurrences: dict[tuple[int | None, str], list[int]] = {}
    for index, record in enumerate(spans):
        occurrences.setdefault((record.parent, record.name), []).append(index)
    dropped: set[int] = set()
    for indexes in occurrences.values():
        if len(indexes) == count:  # one per question: keep this question's
            dropped.update(i for n, i in enumerate(indexes) if n != position)
    kept: dict[int, int] = {}
    out: list[SpanRecord] = []
    for index, record in enumerate(spans):
        if index in dropped or (record.parent is not None and record.parent not in kept):
            continue
        copy = SpanRecord(
            record.name,
            record.span_type,
            None if record.parent is None else kept[record.parent],
            {
                key: _one(value, position, count) if key in _PER_QUESTION_INPUTS else value
                for key, value in record.inputs.items()
            },
            record.attributes,
        )
        copy.start_ns, copy.end_ns, copy.error = record.start_ns, record.end_ns, record.error
        copy.outputs = _one(record.outputs, position, count, lists_only=index != 0)
        kept[index] = len(out)
        out.append(copy)
    root = out[0]
    if "questions" in root.inputs:
        root.inputs = {"question": root.inputs.pop("questions"), **root.inputs}
    root.attributes["batch_size"] = count
    return out


_PER_QUESTION_INPUTS = frozenset({"questions", "texts", "query"})  # one item per question


def _one(value: Any, position: int, count: int, lists_only: bool = False) -> Any:
    """``value[position]`` when ``value`` is a list of one item per question, else ``value``."""
    if isinstance(value, list) and len(value) == count:
        if not lists_only or all(isinstance(item, list) for item in value):
            return value[position]
    return value
