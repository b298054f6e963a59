"""Request ids, JSON access logs and Prometheus metrics (multi-process safe under gunicorn).

With ``PROMETHEUS_MULTIPROC_DIR`` set (``serving/gunicorn.conf.py`` sets it before forking),
every worker writes its samples there and ``/metrics`` aggregates all of them; without it
(tests, the Flask dev server) the process's own registry is served.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
import uuid
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from serving.model_holder import ModelHolder

access_log = logging.getLogger("serving.access")
# a client's request id is kept only in this shape (a uuid, "req-42", "trace:1.2" ...)
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,200}")
# any other method is counted as "other": the label must not take arbitrary client text
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"})

REQUESTS = Counter("rag_requests_total", "HTTP requests", ["route", "method", "status"])
LATENCY = Histogram(
    "rag_request_duration_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
MODEL_VERSION = Gauge(
    "rag_model_version_info",
    "1 for the served model version",
    ["version"],
    multiprocess_mode="livemax",
)
RELOADS = Counter("rag_model_reloads_total", "hot swaps to a new model version")
RELOAD_FAILURES = Counter("rag_model_reload_failures_total", "new versions that failed to load")
WATCH_FAILURES = Counter(
    "rag_model_watch_failures_total", "alias checks that failed (registry unreachable)"
)
CACHE_HITS = Counter("rag_embedding_cache_hits_total", "query-time embeddings found in the cache")
CACHE_MISSES = Counter("rag_embedding_cache_misses_total", "query-time embeddings computed")
ANSWER_CACHE_HITS = Counter("rag_answer_cache_hits_total", "/v1/query answers from the cache")
ANSWER_CACHE_MISSES = Counter("rag_answer_cache_misses_total", "/v1/query answers computed")


def on_model_event(event: str, old: str | None, new: str | None) -> None:
    """Record a watcher event: ``loaded``, ``reload``, ``reload_failure`` or ``watch_failure``."""
    if event == "reload_failure":
        RELOAD_FAILURES.inc()
        return
    if event == "watch_failure":
        WATCH_FAILURES.inc()
        return
    if event == "reload":
        RELOADS.inc()
    if old:
        MODEL_VERSION.labels(old).set(0)
    if new:
        MODEL_VERSION.labels(new).set(1)


def init_observability(app: Flask, holder: ModelHolder) -> None:
    """Request ids on every response, a JSON access-log line and metrics per request.

    Every response also names its server in ``X-Served-By``: behind a load balancer, which
    replica answered.
    """
    embedding_cache = _EmbeddingCacheExporter(holder)
    served_by = app.extensions["rag_settings"].served_by()

    @app.before_request
    def _start() -> None:
        g.request_id = _client_request_id(app) or uuid.uuid4().hex
        g.started = time.perf_counter()
        embedding_cache.track()

    @app.after_request
    def _finish(response: Response) -> Response:
        version = g.get("model_version") or (holder.model.version if holder.model else None)
        response.headers["X-Request-ID"] = g.get("request_id", "")
        response.headers["X-Served-By"] = served_by
        if version:
            response.headers["X-Model-Version"] = version
        route = request.url_rule.rule if request.url_rule else "unmatched"
        method = request.method if request.method in HTTP_METHODS else "other"
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        REQUESTS.labels(route, method, str(response.status_code)).inc()
        LATENCY.labels(route).observe(elapsed)
        response.headers["Server-Timing"] = f"app;dur={elapsed * 1000:.3f}"
        embedding_cache.export()
        access_log.info(
            json.dumps(
                {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "request_id": g.get("request_id"),
                    "method": method,
                    "route": route,  # not the path or query: URLs may carry pasted secrets
                    "status": response.status_code,
                    "latency_ms": round(elapsed * 1000, 3),
                    "model_version": version,
                    "remote": request.remote_addr,
                    "served_by": served_by,
                    "key": g.get("rag_key_name"),  # the key's name (keys file), never the key
                }
            )
        )
        return response

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus metrics, aggregated over every gunicorn worker."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            data = generate_latest(registry)
        else:
            data = generate_latest()
        return Response(data, mimetype=CONTENT_TYPE_LATEST)


def _client_request_id(app: Flask) -> str | None:
    """The client's X-Request-ID if it looks like an id, and is not one of the API keys.

    It is logged and echoed: raw bytes, control characters or a key pasted there by mistake
    must not be.
    """
    value = request.headers.get("X-Request-ID", "")
    if not REQUEST_ID.fullmatch(value):
        return None
    digest = hashlib.sha256(value.encode()).digest()
    return None if digest in app.extensions.get("rag_key_digests", ()) else value


class _EmbeddingCacheExporter:
    """Adds the embedding cache's new hits and misses to the counters after each request.

    The cache keeps running totals; each request exports what was added since the last
    export, under a lock, so concurrent requests (gthread workers) never count a hit twice.
    """

    def __init__(self, holder: ModelHolder) -> None:
        self.holder = holder
        self._exported: dict[int, tuple[int, int]] = {}  # by id of the embedder
        self._lock = threading.Lock()

    def _embedder(self) -> Any:
        embedder = self.holder.model.pipeline.embedder if self.holder.model else None
        return embedder if hasattr(embedder, "hits") else None

    def track(self) -> None:
        """Before a request: start counting a newly served embedder from its current totals.

        Its warm-up, or requests in other apps sharing it, are not this server's traffic.
        """
        embedder = self._embedder()
        if embedder is not None and id(embedder) not in self._exported:
            with self._lock:  # a new version: the old one's entry goes
                self._exported = {id(embedder): (embedder.hits, embedder.misses)}

    def export(self) -> None:
        """After a request: add what the cache counted since the last export."""
        embedder = self._embedder()
        if embedder is None:
            return
        with self._lock:
            if id(embedder) not in self._exported:  # swapped in during this request
                self._exported = {id(embedder): (embedder.hits, embedder.misses)}
                return
            hits, misses = embedder.hits, embedder.misses
            done_hits, done_misses = self._exported[id(embedder)]
            self._exported[id(embedder)] = (hits, misses)
        if hits > done_hits:
            CACHE_HITS.inc(hits - done_hits)
        if misses > done_misses:
            CACHE_MISSES.inc(misses - done_misses)
