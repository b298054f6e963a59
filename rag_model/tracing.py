"""The tracing seam: the pipeline's spans go through a ``Tracer`` the packaging layer supplies.

Shaped like haystack's ``haystack/tracing/tracer.py``: a ``Tracer`` and a ``Span`` protocol, a
``NullTracer`` by default, ``enable_tracing(tracer)`` / ``disable_tracing()``, and the ``span()``
helper the pipeline calls. The core never imports MLflow: ``rag_model.packaging.mlflow_tracer``
implements the protocols with ``mlflow.start_span``.

When no tracer is enabled, ``span()`` returns one shared no-op context manager (a global
read and a context-variable read, well under a microsecond), so an untraced answer pays
nothing measurable. Text (questions, chunk text, prompts, answers) is given to a span only
through ``content()``: with content tracing off (``enable_tracing(tracer, content=False)``)
it is replaced by ``[sha256:<16 hex> <n> chars]``, so traces keep ids, scores, timings and
hashes but no user text.

A caller can choose the tracer for one piece of work without touching the global one
(``use_tracer``): the server traces a sampled request and not the next, and a pyfunc
``predict`` traces its own call, through a context variable that follows the work into the
threads it is copied to (``contextvars.copy_context().run``).

``RecordingTracer`` is the cheap tracer for a request path: each span is a plain
``SpanRecord`` (name, type, parent, start/end ns, the inputs, outputs and attributes as given,
no copies, no JSON), and the finished trace, root first, goes to a ``sink`` that turns it into
whatever the backend wants off the request path (``rag_model.packaging.trace_export``). What a
span is given must not be changed afterwards: the records hold references, read later.
"""

from __future__ import annotations

import hashlib
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

# the span types the pipeline uses (MLflow's SpanType values, so an implementation maps 1:1)
CHAIN = "CHAIN"
EMBEDDING = "EMBEDDING"
RETRIEVER = "RETRIEVER"
LLM = "LLM"
RERANKER = "RERANKER"


class Span(Protocol):
    """One timed step of an answer."""

    def set_inputs(self, inputs: Mapping[str, Any]) -> None:
        """What went into the step (merged with inputs given at start)."""

    def set_outputs(self, outputs: Any) -> None:
        """What came out of it."""

    def set_attribute(self, key: str, value: Any) -> None:
        """A scalar fact about the step (``cache_hit``, ``batch_size`` ...)."""


class Tracer(Protocol):
    """Makes spans; ``trace`` nests under the span open in the current context, if any."""

    def trace(
        self,
        name: str,
        span_type: str,
        inputs: Mapping[str, Any] | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> AbstractContextManager[Span]:
        """A context manager that opens the span and ends it on exit (errors recorded)."""


class NullSpan:
    """A span that records nothing."""

    def set_inputs(self, inputs: Mapping[str, Any]) -> None:
        pass

    def set_outputs(self, outputs: Any) -> None:
        pass

    def set_attribute(self, key: str, value: Any) -> None:
        pass


NULL_SPAN = NullSpan()


class _NullContext(AbstractContextManager):
    """``with`` over it yields ``NULL_SPAN``; one shared instance, no allocation per span."""

    def __enter__(self) -> NullSpan:
        return NULL_SPAN

    def __exit__(self, *exc: object) -> None:
        return None


_NULL_CONTEXT = _NullContext()


class NullTracer:
    """The default tracer: every span is ``NULL_SPAN``."""

    def trace(
        self,
        name: str,
        span_type: str,
        inputs: Mapping[str, Any] | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> AbstractContextManager[Span]:
        return _NULL_CONTEXT


class SpanRecord:
    """One span as plain data (a ``Span``): what ``RecordingTracer`` hands to its sink."""

    __slots__ = (
        "name",
        "span_type",
        "parent",
        "start_ns",
        "end_ns",
        "inputs",
        "outputs",
        "attributes",
        "error",
    )

    def __init__(
        self,
        name: str,
        span_type: str,
        parent: int | None,
        inputs: Mapping[str, Any] | None,
        attributes: Mapping[str, Any] | None,
    ) -> None:
        self.name, self.span_type, self.parent = name, span_type, parent  # parent: its index
        self.start_ns = self.end_ns = 0
        self.inputs: dict[str, Any] = dict(inputs) if inputs else {}
        self.outputs: Any = None
        self.attributes: dict[str, Any] = dict(attributes) if attributes else {}
        # (exception type, message, formatted traceback) when the span's block raised
        self.error: tuple[str, str, str] | None = None

    def set_inputs(self, inputs: Mapping[str, Any]) -> None:
        self.inputs.update(inputs)

    def set_outputs(self, outputs: Any) -> None:
        self.outputs = outputs

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value


# the trace being recorded in this context: (its spans so far, the index of the open span)
_recording: ContextVar[tuple[list[SpanRecord], int] | None] = ContextVar(
    "rag_recording", default=None
)


class _Recorded(AbstractContextManager):
    """The ``with`` block of one recorded span (a class: cheaper than a generator)."""

    __slots__ = ("_tracer", "_record", "_spans", "_token")

    def __init__(self, tracer: RecordingTracer, record: SpanRecord) -> None:
        self._tracer, self._record = tracer, record

    def __enter__(self) -> SpanRecord:
        current = _recording.get()
        spans = current[0] if current is not None else []
        self._record.parent = current[1] if current is not None else None
        spans.append(self._record)
        self._spans = spans
        self._token = _recording.set((spans, len(spans) - 1))
        self._record.start_ns = time.time_ns()
        return self._record

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        record = self._record
        record.end_ns = time.time_ns()
        if error is not None:
            record.error = (
                kind.__name__,
                str(error),
                "".join(traceback.format_exception(error)).strip(),
            )
        _recording.reset(self._token)
        if record.parent is None:  # the root closed: the trace is complete
            self._tracer.sink(self._spans)


class RecordingTracer:
    """A ``Tracer`` that records spans as ``SpanRecord`` and gives each trace to ``sink``.

    ``sink`` is called in the thread that closed the root span, with the spans root first in
    start order; it should only hand them on (a queue), never do the backend's work there.
    """

    def __init__(self, sink: Callable[[list[SpanRecord]], None]) -> None:
        self.sink = sink

    def trace(
        self,
        name: str,
        span_type: str,
        inputs: Mapping[str, Any] | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> AbstractContextManager[Span]:
        return _Recorded(self, SpanRecord(name, span_type, None, inputs, attributes))


class _State:
    tracer: Tracer | None = None  # None: tracing off (the fast path)
    content: bool = True


_state = _State()
# (tracer or None for "off", content) for the current piece of work; unset: the global state
_override: ContextVar[tuple[Tracer | None, bool] | None] = ContextVar("rag_tracer", default=None)


def enable_tracing(tracer: Tracer, content: bool = True) -> None:
    """Send every span of this process to ``tracer``; ``content=False`` keeps text out."""
    _state.tracer, _state.content = tracer, content


def disable_tracing() -> None:
    """Back to the ``NullTracer``: spans cost nothing."""
    _state.tracer, _state.content = None, True


@contextmanager
def use_tracer(tracer: Tracer | None, content: bool = True) -> Iterator[None]:
    """Trace the work inside the block with ``tracer`` (None: not at all), whatever is global."""
    token = _override.set((tracer, content))
    try:
        yield
    finally:
        _override.reset(token)


def _current() -> tuple[Tracer | None, bool]:
    override = _override.get()
    return override if override is not None else (_state.tracer, _state.content)


def current_tracer() -> Tracer | None:
    """The tracer spans made now go to (None: tracing is off here)."""
    return _current()[0]


def is_tracing_enabled() -> bool:
    """Whether spans made now go anywhere (callers skip building costly inputs when not)."""
    return _current()[0] is not None


def is_content_tracing_enabled() -> bool:
    """Whether text may go into spans now."""
    return _current()[1]


def span(
    name: str,
    span_type: str = CHAIN,
    inputs: Mapping[str, Any] | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> AbstractContextManager[Span]:
    """A span around one step of an answer, nested under the open one; a no-op when off.

    Build costly ``inputs`` only ``if is_tracing_enabled()``; text only through ``content``.
    """
    tracer = _current()[0]
    if tracer is None:
        return _NULL_CONTEXT
    return tracer.trace(name, span_type, inputs, attributes)


def digest(text: str) -> str:
    """A short stable fingerprint of ``text``: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def content(text: str) -> str:
    """``text`` when content tracing is on, else ``"[sha256:<16 hex> <n> chars]"``."""
    if is_content_tracing_enabled():
        return text
    return f"[sha256:{digest(text)} {len(text)} chars]"


def documents(chunks: Sequence[RetrievedChunkLike]) -> list[dict[str, Any]]:
    """Retrieved chunks in MLflow's retriever schema (``page_content``, ``metadata``, ``id``).

    ``metadata.doc_uri`` is the document id, ``chunk_id`` the chunk's, and every score that
    ranked it (``score``, ``dense``, ``lexical``, ``fused``) is kept.
    """
    return [
        {
            "page_content": content(chunk.text),
            "metadata": {
                "doc_uri": chunk.document_id,
                "chunk_id": chunk.id,
                "score": round(float(chunk.score), 6),
                **{name: round(float(value), 6) for name, value in chunk.scores.items()},
            },
            "id": chunk.id,
        }
        for chunk in chunks
    ]


def ranked(chunks: Sequence[RetrievedChunkLike]) -> list[dict[str, Any]]:
    """Chunk ids, document ids and scores, no text: the steps inside retrieval.

    Their parent span holds the text once, as ``documents``.
    """
    return [
        {
            "chunk_id": chunk.id,
            "doc_uri": chunk.document_id,
            **{name: round(float(value), 6) for name, value in chunk.scores.items()},
            "score": round(float(chunk.score), 6),
        }
        for chunk in chunks
    ]


class RetrievedChunkLike(Protocol):
    """What ``documents`` reads from a retrieved chunk (``rag_model.documents``)."""

    id: str
    document_id: str
    text: str
    score: float
    scores: Mapping[str, float]
