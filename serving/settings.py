"""Typed registry of the server's ``RAG_*`` environment variables: each declared once, here.

Only serving behaviour lives here; chunking, k defaults and the embedder travel inside the
model and are never read from the environment.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import ClassVar

from rag_model.errors import ConfigError
from rag_model.query import MAX_K

_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass(frozen=True)
class Settings:
    """Server settings; ``Settings.from_env()`` reads ``RAG_<FIELD NAME IN CAPITALS>``.

    Example:
        >>> Settings.from_env({"RAG_MAX_K": "20"}).max_k
        20
    """

    # which model every worker loads; an alias is resolved once to a pinned version
    model_uri: str = "models:/rag-model@production"
    # gunicorn: address, worker processes, seconds a request may take before the worker is
    # replaced (the first load of a model takes several seconds of imports)
    bind: str = "127.0.0.1:8000"
    workers: int = 2
    timeout: int = 120
    # torch threads per worker: one per worker avoids oversubscribing the cores
    torch_threads: int = 1
    # request limits
    max_body_bytes: int = 1_048_576
    max_question_chars: int = 2_000
    # at most MAX_K, the one bound of rag_model.query; a version whose own retrieval.k is
    # above this is refused at load (its default answers would break the limit)
    max_k: int = MAX_K
    max_batch: int = 64  # questions per /v1/query/batch or rows per /invocations request
    request_timeout: int = 30  # seconds before a request is answered 504
    # hot swap: seconds between checks of the alias in RAG_MODEL_URI
    poll_seconds: int = 10
    # when the registry cannot be reached, the delay between alias checks doubles from
    # poll_seconds up to this many seconds (the worker keeps serving what it has meanwhile)
    watch_max_backoff_seconds: int = 300
    # gunicorn threads per worker (1: sync workers; more: gthread)
    threads: int = 1
    # gthread: seconds an idle keep-alive connection stays open; behind a proxy that keeps
    # connections (deploy/nginx: 15 s), set it above the proxy's so the proxy closes first
    keepalive: int = 2
    # API keys: comma-separated, and/or a file with one key per line; none means no auth
    api_keys: str = field(default="", repr=False)  # secrets: never in a repr or a log
    api_keys_file: str = ""
    # rate limit per API key (or client address without auth), e.g. "100/minute"; "" = none.
    # Storage "memory://" counts per worker; "redis://host:6379/0" shares counts across workers
    # and replicas. With a limit set, an unreachable storage stops the server at start; if
    # Redis is lost later, each worker counts alone until it is back (serving/security.py)
    rate_limit: str = ""
    rate_limit_storage: str = "memory://"
    # proxies in front that append to X-Forwarded-For (the nginx example: 1); the client
    # address for rate limits and logs is then read from that header. 0 trusts no header
    # (behind no proxy a client could forge it)
    proxy_hops: int = 0
    # names this server in the X-Served-By header; default "<hostname>:<port of RAG_BIND>"
    instance_name: str = ""
    # gunicorn: seconds in-flight requests get to finish after SIGTERM before workers are
    # killed (Kubernetes' terminationGracePeriodSeconds must leave room for it)
    graceful_timeout: int = 30
    # whole /v1/query answers kept per served version, by (question, k, filter,
    # include_sources): a repeated question costs a dictionary lookup; 0 turns it off
    answer_cache_size: int = 4096
    # micro-batching of /v1/query inside a worker (needs RAG_THREADS > 1): requests in flight
    # together are gathered for at most batch_wait_ms, up to batch_max, then encoded and
    # searched as one batch; a lone request never waits. 0 ms turns it off (see bench/README.md
    # for why that is the default on 2 cores)
    batch_wait_ms: int = 0
    batch_max: int = 16
    # served traces (docs/tracing.md): the share of /v1/query, /v1/query/batch, /invocations
    # and /v1/chat/completions requests recorded as MLflow traces (0 to 1; 0 keeps MLflow out
    # of the workers), written in the background to MLFLOW_TRACKING_URI. A served trace costs
    # about 1.4 ms of CPU against about 13.4 ms for the answer on the 2-core CI machine
    # (bench/tracing_overhead.py, docs/tracing.md): 0.1 costs about 1%, within a 2% budget
    trace_sample_ratio: float = 0.1
    # false: no question, chunk, prompt or answer text in traces (ids, scores, timings and
    # SHA-256 prefixes only), for deployments that must not store user text
    trace_content: bool = True
    # the experiment (by name) that receives the traces; "" = the served run's own experiment
    trace_experiment: str = ""
    # browser clients: comma-separated origins allowed by CORS (e.g. "https://app.example.com");
    # "*" allows any origin; "" sends no CORS headers (browsers then refuse other origins)
    cors_origins: str = ""
    # shadow traffic (serving/shadow.py): a second version, followed like RAG_MODEL_URI, answers
    # a sample (0 to 1) of live questions off the request path; pairs are compared and recorded
    # as runs of the shadow version. The question's sha256 is recorded, its text only with
    # shadow_record_text. A full queue drops (counted); flushed every shadow_flush_pairs pairs
    # or shadow_flush_seconds, whichever comes first
    shadow_uri: str = ""
    shadow_sample: float = 0.0
    shadow_record_text: bool = False
    shadow_queue_size: int = 64
    shadow_flush_pairs: int = 200
    shadow_flush_seconds: int = 30
    # set by serving/gunicorn.conf.py for its workers, not by users: the JSON file where the
    # master's `python -m serving.prepare` reports the version it resolved and verified
    prepared_file: str = ""

    # the settings where 0 means "off" rather than a mistake
    ZERO_ALLOWED: ClassVar[frozenset[str]] = frozenset(
        {"answer_cache_size", "batch_wait_ms", "proxy_hops"}
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.trace_sample_ratio <= 1.0:
            raise ConfigError(
                "RAG_TRACE_SAMPLE_RATIO must be between 0 and 1 (0 turns tracing off, 1 traces "
                f"every request), got {self.trace_sample_ratio:g}"
            )
        if not 0.0 <= self.shadow_sample <= 1.0:
            raise ConfigError(
                f"RAG_SHADOW_SAMPLE must be between 0 and 1, got {self.shadow_sample}"
            )
        if self.shadow_sample > 0 and not self.shadow_uri:
            raise ConfigError(
                "RAG_SHADOW_SAMPLE is set but RAG_SHADOW_URI is not: name the shadow version, "
                "e.g. models:/rag-model@candidate"
            )
        if self.max_k > MAX_K:
            raise ConfigError(
                f"RAG_MAX_K must be at most {MAX_K} (rag-model's bound on k), got {self.max_k}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from ``environ`` (default ``os.environ``), checking types.

        Raises:
            ConfigError: naming the variable, its value and the expected type.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for entry in fields(cls):
            name = f"RAG_{entry.name.upper()}"
            raw = environ.get(name)
            if raw is None or raw == "":
                continue
            if entry.type == "int":
                try:
                    number = int(raw)
                except ValueError:
                    raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
                if number < 0 or (number == 0 and entry.name not in cls.ZERO_ALLOWED):
                    floor = ">= 0" if entry.name in cls.ZERO_ALLOWED else "> 0"
                    raise ConfigError(f"{name} must be {floor}, got {number}")
                values[entry.name] = number
            elif entry.type == "float":
                try:
                    values[entry.name] = float(raw)
                except ValueError:
                    raise ConfigError(f"{name} must be a number, got {raw!r}") from None
            elif entry.type == "bool":
                flag = raw.strip().lower()
                if flag not in _BOOLEANS:
                    raise ConfigError(f"{name} must be true or false, got {raw!r}")
                values[entry.name] = _BOOLEANS[flag]
            else:
                values[entry.name] = raw
        return cls(**values)  # type: ignore[arg-type]

    def served_by(self) -> str:
        """The X-Served-By name: RAG_INSTANCE_NAME, else ``<hostname>:<port of RAG_BIND>``."""
        return self.instance_name or f"{socket.gethostname()}:{self.bind.rsplit(':', 1)[-1]}"
