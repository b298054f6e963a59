"""Recorded traces written to MLflow off the request path: one background exporter per process.

The server answers a sampled request under ``rag_model.tracing.RecordingTracer``: the request
thread only records plain span data (``SpanRecord``) and puts the finished trace on a bounded
queue (``TraceExporter.submit``; a full queue drops it, counted). One background thread per
process builds what MLflow stores from the records and writes it:

- the trace's spans as the JSON document MLflow's ``Span.to_dict`` gives (same ids, attributes,
  ``mlflow.spanInputs`` / ``mlflow.spanOutputs``, span types, log levels, exception events), so
  the UI, ``mlflow.get_trace`` and ``search_traces`` read it like any MLflow trace;
- its ``TraceInfo`` (tags, ``client_request_id``, the LoggedModel's ``mlflow.modelId``, request
  and response previews, token usage, size stats) with ``TracingClient.start_trace``, then the
  span document to the trace's artifact location: one store write and one file per trace.

This skips MLflow's live-span machinery (OpenTelemetry spans, the in-memory trace manager, the
span processor, ``Document`` objects, serialising every attribute as it is set and again for the
size stats): what it cost in CPU per trace is in ``docs/tracing.md`` (``bench/trace_cpu.py``).
Traces are written once and never updated, as before; feedback finds them by
``client_request_id``.
"""

from __future__ import annotations

import atexit
import base64
import json
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from rag_model.packaging.mlflow_tracer import CHAT_USAGE, TraceContext
from rag_model.tracing import SpanRecord

logger = logging.getLogger(__name__)

QUEUE_SIZE = 1000  # traces waiting for the exporter thread; beyond it they are dropped
# traces written in one SQLite transaction when that many wait: 7.3 -> 4.0 ms of CPU per trace
# at 20 (bench/trace_cpu.py), and one disk sync instead of 20
BATCH = 32
# seconds the exporter waits after a trace for others to write with it: a trace alone costs
# about 5 ms of CPU, one of 32 in a transaction about 3.5 (bench/trace_cpu.py); traces become
# visible that much later (feedback waits up to 3 s for one)
LINGER = 0.5
EXPERIMENT_TTL = 10.0  # seconds a trace experiment read by the exporter is trusted
EXIT_FLUSH = 5.0  # seconds a stopping process waits for its queued traces to be written
_TRACE_FILE = "traces.json"  # mlflow.tracing.constant.TRACE_DATA_FILE_NAME
_PREVIEW_CHARS = 250  # mlflow.tracing.constant.MAX_CHARS_IN_TRACE_INFO_METADATA
_USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens")
_STATUS_OK = {"code": "STATUS_CODE_OK", "message": ""}

# an export's outcome: "ok", "failed" (the store refused or was unreachable) or "dropped"
Outcome = Callable[[str], None]


class TraceExporter:
    """A bounded queue of recorded traces and the thread that writes them to MLflow."""

    def __init__(
        self,
        capacity: int = QUEUE_SIZE,
        on_outcome: Outcome | None = None,
        linger: float = LINGER,
    ) -> None:
        self.capacity = capacity
        self.linger = linger
        self.on_outcome = on_outcome or (lambda outcome: None)
        self._queue: queue.Queue[tuple[TraceContext, list[SpanRecord]]] = queue.Queue(capacity)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._writer: _Writer | None = None

    def sink(self, context: TraceContext) -> Callable[[list[SpanRecord]], None]:
        """What a ``RecordingTracer`` for one request calls with its finished trace."""
        return lambda spans: self.submit(context, spans)

    def submit(self, context: TraceContext, spans: list[SpanRecord]) -> None:
        """Queue one trace (the request thread's only tracing work); dropped when full."""
        self._ensure_thread()
        try:
            self._queue.put_nowait((context, spans))
        except queue.Full:
            self.on_outcome("dropped")

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued trace is written (tests, shutdown); False on timeout."""
        done = threading.Event()
        waiter = threading.Thread(target=lambda: (self._queue.join(), done.set()), daemon=True)
        waiter.start()
        return done.wait(timeout)

    def _ensure_thread(self) -> None:
        # one thread per process: a gunicorn worker forked from a master that had one starts
        # its own (threads do not survive fork)
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="rag-trace-export", daemon=True
                )
                self._thread.start()
                # a stopping worker writes what is queued, for EXIT_FLUSH seconds at most
                atexit.register(self.flush, EXIT_FLUSH)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]  # then what comes within LINGER, up to BATCH
            deadline = time.monotonic() + self.linger
            while len(batch) < BATCH:
                remaining = deadline - time.monotonic()
                try:
                    if remaining > 0:
                        batch.append(self._queue.get(timeout=remaining))
                    else:
                        batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                if self._writer is None:
                    self._writer = _Writer()
                outcomes = self._writer.write_many(batch)
            except Exception as exc:  # never the request's problem: counted and logged
                outcomes = [exc] * len(batch)
            for outcome in outcomes:
                if outcome is None:
                    self.on_outcome("ok")
                else:
                    self.on_outcome("failed")
                    logger.warning("trace not exported (%s: %s)", type(outcome).__name__, outcome)
            for _ in batch:
                self._queue.task_done()


class Built(NamedTuple):
    """One recorded trace as MLflow stores it, and its spans for an OpenTelemetry collector."""

    info: Any  # mlflow.entities.TraceInfo
    data: str  # the span JSON document (the trace's traces.json)
    trace_id: int  # the OpenTelemetry trace id
    spans: list[tuple[int, int | None, dict[str, Any]]]  # (span id, parent id, span dict)


class _Writer:
    """Builds and writes traces with MLflow's client (imported in the exporter thread)."""

    def __init__(self) -> None:
        from mlflow.tracing.client import TracingClient
        from mlflow.tracing.utils import TraceJSONEncoder
        from mlflow.tracing.utils.environment import resolve_env_metadata

        self.client = TracingClient()
        self.encoder = TraceJSONEncoder(ensure_ascii=False)
        self.environment = dict(resolve_env_metadata())
        self._levels: dict[str, str] = {}
        self.otlp = _OtlpTraces.from_env()
        # with a collector set, MLflow sends it the traces instead of the tracking server,
        # unless both are asked for; the same here
        self.to_mlflow = self.otlp is None or _dual_export()
        self.batches = _BatchingStore.over(self.client.store) if self.to_mlflow else None
        self.rest = _RestTraces.over(self.client.store, self.client.tracking_uri)

    def write_many(
        self, traces: Sequence[tuple[TraceContext, Sequence[SpanRecord]]]
    ) -> list[Exception | None]:
        """Write ``traces``; per trace None (written) or why not."""
        built: list[Built | Exception] = []
        for context, spans in traces:
            try:
                built.append(self.build(context, spans))
            except Exception as exc:
                built.append(exc)
        collector: Exception | None = None
        if self.otlp is not None:
            try:  # one export call for the batch
                self.otlp.export([item for item in built if not isinstance(item, Exception)])
            except Exception as exc:
                collector = exc
        if not self.to_mlflow:
            return [item if isinstance(item, Exception) else collector for item in built]
        infos: list[Any] = [None] * len(built)
        ready = [i for i, item in enumerate(built) if not isinstance(item, Exception)]
        if self.batches is not None and ready:
            try:  # one transaction; if any trace fails, each is tried on its own below
                with self.batches.transaction():
                    locations = self.batches.insert([built[i].info for i in ready])  # type: ignore[union-attr]
                for i, (key, value) in zip(ready, locations, strict=True):
                    infos[i] = built[i].info  # type: ignore[union-attr]
                    infos[i].tags[key] = value  # committed: where its span file goes
            except Exception as exc:
                logger.debug("batch insert failed, one trace at a time (%s)", exc)
                infos = [None] * len(built)
        outcomes: list[Exception | None] = []
        for i, item in enumerate(built):
            if isinstance(item, Exception):
                outcomes.append(item)
                continue
            try:
                if infos[i] is None and self.rest is not None:
                    self.rest.write(item.info, item.data)
                else:
                    self._upload(infos[i] or self.client.start_trace(item.info), item.data)
            except Exception as exc:
                outcomes.append(exc)
            else:
                outcomes.append(collector)  # written here; failed if the collector refused it
        return outcomes

    def write(self, context: TraceContext, spans: Sequence[SpanRecord]) -> None:
        """Write one trace (raises what the store raised)."""
        outcome = self.write_many([(context, spans)])[0]
        if outcome is not None:
            raise outcome

    def _upload(self, info: Any, data: str) -> None:
        from mlflow.utils.file_utils import local_file_uri_to_path
        from mlflow.utils.mlflow_tags import MLFLOW_ARTIFACT_LOCATION
        from mlflow.utils.uri import is_local_uri

        location = info.tags.get(MLFLOW_ARTIFACT_LOCATION)
        if location and is_local_uri(location, is_tracking_or_registry_uri=False):
            # what LocalArtifactRepository.upload_trace_data does, minus a temporary file, its
            # copy and an rmdir, and without building a repository object (with a thread pool
            # and five URL parses) per trace
            directory = local_file_uri_to_path(location)
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, _TRACE_FILE), "w", encoding="utf-8") as out:
                out.write(data)
        else:
            self.client._get_artifact_repo_for_trace(info).upload_trace_data(data)

    def build(self, context: TraceContext, spans: Sequence[SpanRecord]) -> Built:
        """The ``TraceInfo``, span JSON document and span dicts of one recorded trace."""
        from mlflow.entities import TraceInfo, TraceLocation, TraceState
        from mlflow.tracing.utils.truncation import _get_truncated_preview

        dumps = self.encoder.encode
        otel_trace_id = random.getrandbits(128) or 1
        trace_id = f"tr-{otel_trace_id:032x}"
        trace_id_b64 = _b64(otel_trace_id.to_bytes(16, "big"))
        quoted_id = dumps(trace_id)
        numbers = [random.getrandbits(64) or 1 for _ in spans]
        span_ids = [_b64(number.to_bytes(8, "big")) for number in numbers]
        parents: list[int | None] = []
        root = spans[0]
        usage = dict.fromkeys(_USAGE_KEYS, 0)
        used = False
        documents: list[str] = []
        dicts: list[dict[str, Any]] = []
        root_inputs = root_outputs = None
        for index, record in enumerate(spans):
            attributes: dict[str, str] = {"mlflow.traceRequestId": quoted_id}
            if index == 0 and context.experiment_id:
                attributes["mlflow.experimentId"] = dumps(context.experiment_id)
            attributes["mlflow.spanType"] = dumps(record.span_type)
            given = {**context.attributes, **record.attributes} if index == 0 else record.attributes
            for key, value in given.items():
                if key == "token_usage":  # MLflow sums these over the trace and shows them
                    key = CHAT_USAGE
                    if isinstance(value, dict):
                        used = True
                        for name in _USAGE_KEYS:
                            usage[name] += int(value.get(name) or 0)
                attributes[key] = dumps(value)
            if record.inputs:
                attributes["mlflow.spanInputs"] = dumps(record.inputs)
            if record.outputs is not None:
                attributes["mlflow.spanOutputs"] = dumps(record.outputs)
            if index == 0:
                root_inputs = attributes.get("mlflow.spanInputs")
                root_outputs = attributes.get("mlflow.spanOutputs")
            attributes["mlflow.spanLogLevel"] = self._level(record)
            events: list[dict[str, Any]] = []
            status = _STATUS_OK
            if record.error is not None:
                kind, message, stack = record.error
                status = {"code": "STATUS_CODE_ERROR", "message": f"{kind}: {message}"}
                events.append(
                    {
                        "name": "exception",
                        "time_unix_nano": record.end_ns,
                        "attributes": {
                            "exception.type": kind,
                            "exception.message": message,
                            "exception.stacktrace": stack,
                        },
                    }
                )
            dicts.append(
                {
                    "trace_id": trace_id_b64,
                    "span_id": span_ids[index],
                    "parent_span_id": None if record.parent is None else span_ids[record.parent],
                    "name": record.name,
                    "start_time_unix_nano": record.start_ns,
                    "end_time_unix_nano": record.end_ns,
                    "events": events,
                    "status": status,
                    "attributes": attributes,
                    "links": [],
                }
            )
            documents.append(dumps(dicts[-1]))
            parents.append(None if record.parent is None else numbers[record.parent])
        data = '{"spans": [' + ", ".join(documents) + "]}"
        sizes = sorted(len(document.encode()) for document in documents)
        metadata = {
            **self.environment,
            "mlflow.trace_schema.version": "3",
            "mlflow.traceInputs": _truncate(root_inputs),
            "mlflow.traceOutputs": _truncate(root_outputs),
            "mlflow.trace.sizeBytes": str(len(data.encode())),
            "mlflow.trace.sizeStats": json.dumps(
                {
                    "total_size_bytes": len(data.encode()),
                    "num_spans": len(sizes),
                    "max": sizes[-1],
                    "p25": sizes[len(sizes) // 4],
                    "p50": sizes[len(sizes) // 2],
                    "p75": sizes[3 * len(sizes) // 4],
                }
            ),
        }
        if used:
            metadata["mlflow.trace.tokenUsage"] = json.dumps(usage)
        if context.model_id:
            metadata["mlflow.modelId"] = context.model_id
        info = TraceInfo(
            trace_id=trace_id,
            trace_location=TraceLocation.from_experiment_id(context.experiment_id),
            request_time=root.start_ns // 1_000_000,
            execution_duration=(root.end_ns - root.start_ns) // 1_000_000,
            state=TraceState.ERROR if root.error is not None else TraceState.OK,
            request_preview=_get_truncated_preview(root_inputs, role="user"),
            response_preview=_get_truncated_preview(root_outputs, role="assistant"),
            client_request_id=context.client_request_id,
            trace_metadata=metadata,
            tags={**context.tags, "mlflow.traceName": root.name},
        )
        return Built(info, data, otel_trace_id, list(zip(numbers, parents, dicts, strict=True)))

    def _level(self, record: SpanRecord) -> str:
        if record.error is not None:
            from mlflow.entities.span_log_level import SpanLogLevel

            return str(int(SpanLogLevel.ERROR))
        level = self._levels.get(record.span_type)
        if level is None:
            from mlflow.tracing.utils.default_log_level import default_log_level_for_span_type

            level = str(int(default_log_level_for_span_type(record.span_type)))
            self._levels[record.span_type] = level
        return level


class _BatchingStore:
    """A private SQLite/SQL store whose writes inside ``transaction()`` share one session.

    ``SqlAlchemyStore.start_trace`` opens, commits and closes a session per trace (with its
    PRAGMAs, an experiment read and a disk sync); inside ``transaction`` every session it asks
    for is the same one, committed once at the end. Private to the exporter thread, so no other
    caller of the process's store ever shares that session, or its experiment cache.
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self._maker = store.ManagedSessionMaker
        self._session: Any = None
        store.ManagedSessionMaker = self._managed_session
        # start_trace reads the experiment (to refuse a deleted one) for every trace: a third
        # of its CPU; read once per EXPERIMENT_TTL seconds instead
        self._get_experiment = store.get_experiment
        self._experiments: dict[str, tuple[float, Any]] = {}
        store.get_experiment = self._cached_experiment

    def _cached_experiment(self, experiment_id: str) -> Any:
        now = time.monotonic()
        cached = self._experiments.get(experiment_id)
        if cached is None or now - cached[0] > EXPERIMENT_TTL:
            cached = (now, self._get_experiment(experiment_id))
            self._experiments[experiment_id] = cached
        return cached[1]

    @classmethod
    def over(cls, shared: Any) -> _BatchingStore | None:
        """One over a new store like ``shared`` (a plain SqlAlchemyStore), else None."""
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        if type(shared) is not SqlAlchemyStore or getattr(shared, "read_engine", None):
            return None
        try:
            return cls(SqlAlchemyStore(shared.db_uri, shared.artifact_root_uri))
        except Exception as exc:  # one trace per transaction then
            logger.warning("traces are written one per transaction (%s)", exc)
            return None

    def insert(self, infos: Sequence[Any]) -> list[tuple[str, str]]:
        """Write ``infos`` (``TraceInfo``) as ``start_trace`` would, in bulk; inside a transaction.

        ``SqlAlchemyStore.start_trace`` builds an ORM object per trace, tag and metadata entry
        and flushes them one trace at a time: about 3 ms of CPU per served trace, most of what a
        trace cost (bench/trace_cpu.py). The same rows, made by the store's own helpers (trace
        name check, analytics columns, artifact location tag, promoted metadata keys, the
        finalized marker, rollup partitions), go in as three multi-row inserts per batch. A test
        reads traces written both ways back from a store and finds them identical; anything
        unexpected raises, and the caller writes each trace with ``start_trace`` instead.
        Returns each trace's artifact location tag (key, value), for its span file; ``infos``
        are left as they were, so that the fallback can write them.
        """
        from mlflow.store.tracking import sqlalchemy_store as sql
        from mlflow.store.tracking.dbmodels.models import (
            SqlTraceInfo,
            SqlTraceMetadata,
            SqlTraceTag,
        )
        from mlflow.tracing.constant import TraceMetadataKey, TraceTagKey
        from sqlalchemy import insert

        store, session = self.store, self._session
        traces, tags, metadata, partitions, locations = [], [], [], set(), []
        for info in infos:
            if info.assessments:  # start_trace writes those; served traces have none
                raise ValueError("assessments are written by start_trace")
            trace_id = info.trace_id
            experiment = store.get_experiment(info.experiment_id)
            store._check_experiment_is_active(experiment)
            entries = dict(info.trace_metadata.items())
            traces.append(
                {
                    "request_id": trace_id,
                    "experiment_id": info.experiment_id,
                    "timestamp_ms": info.request_time,
                    "execution_time_ms": info.execution_duration,
                    "status": info.state.value,
                    "client_request_id": info.client_request_id,
                    "request_preview": info.request_preview,
                    "response_preview": info.response_preview,
                    "trace_name": sql.validate_trace_name(info.tags.get(TraceTagKey.TRACE_NAME)),
                    **sql.analytics_columns_from_metadata(entries),
                }
            )
            location = store._get_trace_artifact_location_tag(experiment, trace_id)
            tags.extend(
                {"request_id": trace_id, "key": key, "value": value}
                for key, value in info.tags.items()
                if key != TraceTagKey.TRACE_NAME
            )
            tags.append({"request_id": trace_id, "key": location.key, "value": location.value})
            locations.append((location.key, location.value))
            for key in sql.PROMOTED_TRACE_METADATA_KEYS:
                entries.pop(key, None)
            entries[TraceMetadataKey.TRACE_INFO_FINALIZED] = "true"
            metadata.extend(
                {"request_id": trace_id, "key": key, "value": value}
                for key, value in sorted(entries.items())
            )
            partitions.update(
                (family, int(info.experiment_id), info.request_time)
                for family in (sql.RollupFamily.TRACE_METRIC, sql.RollupFamily.ASSESSMENT)
            )
        sql.enqueue_rollup_rebuild_partitions(
            session, [(family, experiment, [time]) for family, experiment, time in partitions]
        )
        session.execute(insert(SqlTraceInfo), traces)
        session.execute(insert(SqlTraceTag), tags)
        session.execute(insert(SqlTraceMetadata), metadata)
        return locations

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._maker(read_only=False) as session:
            self._session = session
            try:
                yield
            finally:
                self._session = None

    @contextmanager
    def _managed_session(self, read_only: bool = True) -> Iterator[Any]:
        if self._session is not None:
            yield self._session
        else:
            with self._maker(read_only=read_only) as session:
                yield session


class _OtlpTraces:
    """Recorded traces to an OpenTelemetry collector, with MLflow's OTLP settings.

    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_ENDPOINT``), its protocol
    and ``MLFLOW_ENABLE_OTLP_EXPORTER`` decide, through MLflow's own
    ``mlflow.tracing.utils.otlp``, whether and how; each batch is one export call with the spans
    MLflow's live tracer would have sent (its attributes, JSON values as MLflow writes them),
    under the resource ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` describe.
    """

    def __init__(self) -> None:
        from mlflow.tracing.utils.otlp import get_otlp_exporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self.exporter = get_otlp_exporter()
        self.resource = Resource.create()
        self.scope = InstrumentationScope("rag_model")

    @classmethod
    def from_env(cls) -> _OtlpTraces | None:
        from mlflow.tracing.utils.otlp import should_use_otlp_exporter

        return cls() if should_use_otlp_exporter() else None

    def export(self, traces: Sequence[Built]) -> None:
        """Send the spans of ``traces`` in one call (raises when the collector refuses them)."""
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.sdk.trace.export import SpanExportResult
        from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags

        sampled = TraceFlags(TraceFlags.SAMPLED)
        spans = []
        for trace in traces:
            for number, parent, span in trace.spans:
                error = span["status"]["code"] == "STATUS_CODE_ERROR"
                spans.append(
                    ReadableSpan(
                        span["name"],
                        context=SpanContext(trace.trace_id, number, False, sampled),
                        parent=None
                        if parent is None
                        else SpanContext(trace.trace_id, parent, False, sampled),
                        resource=self.resource,
                        attributes=span["attributes"],
                        events=[
                            Event(e["name"], e["attributes"], e["time_unix_nano"])
                            for e in span["events"]
                        ],
                        status=Status(StatusCode.ERROR, span["status"]["message"])
                        if error
                        else Status(StatusCode.OK),
                        start_time=span["start_time_unix_nano"],
                        end_time=span["end_time_unix_nano"],
                        instrumentation_scope=self.scope,
                    )
                )
        if spans and self.exporter.export(spans) is not SpanExportResult.SUCCESS:
            raise RuntimeError(
                f"the OpenTelemetry collector did not accept {len(traces)} traces (see the "
                "OTLP exporter's log)"
            )


def _dual_export() -> bool:
    from mlflow.environment_variables import MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT

    return bool(MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT.get())


class _RestTraces:
    """Traces to a tracking server (``http(s)://``) over one kept-alive HTTP session.

    The same two calls MLflow's client makes per trace (``StartTraceV3``, then the span file
    to the trace's ``mlflow-artifacts:`` location), with the same body, headers and
    credentials, but what ``mlflow.utils.rest_utils.http_request`` works out on every call is
    worked out once: its request headers (the Databricks context probes, a failing import
    each), the proxies from the environment, a temporary file per upload. That was about 14 ms
    of CPU per trace on the serving host, most of the exporter's cost (bench/trace_cpu.py
    ``--tracking-server``). No retries: a trace the server refuses or does not answer within
    ``TIMEOUT`` seconds is counted failed (the queue behind it drops what does not fit).
    Stores that need more (Databricks, SigV4, auth plugins) keep MLflow's own client.
    """

    TIMEOUT = 10.0

    def __init__(self, store: Any, tracking_uri: str) -> None:
        import requests
        from mlflow.tracking.request_header.registry import resolve_request_headers
        from mlflow.utils.rest_utils import _V3_TRACE_REST_API_PATH_PREFIX
        from mlflow.utils.workspace_context import get_request_workspace
        from mlflow.utils.workspace_utils import WORKSPACE_HEADER_NAME

        creds = store.get_host_creds()
        self.tracking_uri = tracking_uri
        self.url = creds.host.rstrip("/") + _V3_TRACE_REST_API_PATH_PREFIX
        headers = dict(resolve_request_headers())
        if workspace := get_request_workspace():
            headers[WORKSPACE_HEADER_NAME] = workspace
        if creds.username and creds.password:
            token = base64.standard_b64encode(f"{creds.username}:{creds.password}".encode())
            headers["Authorization"] = "Basic " + token.decode()
        elif creds.token:
            headers["Authorization"] = f"Bearer {creds.token}"
        self.session = requests.Session()
        self.session.headers.update(headers)
        self.session.trust_env = False  # proxies read once, here, not per request
        self.session.proxies = requests.utils.get_environ_proxies(creds.host)
        self.session.verify = creds.server_cert_path or not creds.ignore_tls_verification
        self.session.cert = creds.client_cert_path

    @classmethod
    def over(cls, store: Any, tracking_uri: str) -> _RestTraces | None:
        """One for a plain ``RestStore`` with no special authentication, else None."""
        from mlflow.store.tracking.rest_store import RestStore

        if type(store) is not RestStore:
            return None
        try:
            creds = store.get_host_creds()
            if (
                creds.use_databricks_sdk
                or creds.aws_sigv4
                or creds.auth
                or creds.client_secret
                or not creds.host.startswith(("http://", "https://"))
            ):
                return None
            return cls(store, tracking_uri)
        except Exception as exc:  # MLflow's client then
            logger.warning("traces go through MLflow's client (%s)", exc)
            return None

    def write(self, info: Any, data: str) -> None:
        """Create the trace, then write its span file (raises what went wrong)."""
        from mlflow.entities import Trace, TraceData
        from mlflow.protos.service_pb2 import StartTraceV3
        from mlflow.utils.mlflow_tags import MLFLOW_ARTIFACT_LOCATION
        from mlflow.utils.proto_json_utils import message_to_json

        body = message_to_json(StartTraceV3(trace=Trace(info, TraceData(spans=[])).to_proto()))
        answer = self.session.post(self.url, data=body, timeout=self.TIMEOUT, headers=_JSON_HEADERS)
        _check(answer, "StartTraceV3")
        location = answer.json()["trace"]["trace_info"]["tags"][MLFLOW_ARTIFACT_LOCATION]
        if location.startswith("mlflow-artifacts:"):
            from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository

            url = MlflowArtifactsRepository.resolve_uri(location, self.tracking_uri)
            answer = self.session.put(
                f"{url}/{_TRACE_FILE}",
                data=data.encode(),
                timeout=self.TIMEOUT,
                headers=_JSON_HEADERS,
            )
            _check(answer, "the span file upload")
        else:  # a store the server does not proxy (s3://, a shared file system ...)
            from mlflow.store.artifact.artifact_repository_registry import (
                get_artifact_repository,
            )

            get_artifact_repository(location).upload_trace_data(data)


_JSON_HEADERS = {"Content-Type": "application/json"}


def _check(answer: Any, what: str) -> None:
    if not answer.ok:
        raise RuntimeError(
            f"the tracking server refused {what}: HTTP {answer.status_code} {answer.text[:300]}"
        )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _truncate(value: str | None) -> str:
    if not value:
        return ""
    if len(value) > _PREVIEW_CHARS:
        return value[: _PREVIEW_CHARS - 3] + "..."
    return value
