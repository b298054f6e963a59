"""The served model of one worker: loaded in the background, hot-swapped when its alias moves.

An alias URI (``models:/name@production``) is resolved to a pinned version
(``models:/name/7``) so the version the server reports is exactly the one it loaded. A watcher
thread polls the alias; when it points at a new version, that version is loaded, verified and
warmed beside the old one, then swapped in with one reference assignment. Requests hold the
model they started with, so in-flight requests finish on the old version, which is released
when the last of them ends. A version that fails to load never replaces a working one: the
failure is logged, counted and shown by ``/ready``.

When the registry cannot be reached, the worker keeps serving the version it has and the
watcher backs off: the delay before the next check doubles with each failure in a row, from
``poll_seconds`` up to ``max_backoff_seconds``, and is back to ``poll_seconds`` after the first
check that works. ``/ready`` shows the failures in a row, the delay and the next check's time.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag_model.errors import ModelError
from rag_model.pipeline import RagPipeline
from serving.answer_cache import AnswerCache
from serving.prepare import open_prepared, wait_for
from serving.settings import Settings

logger = logging.getLogger("serving")


def _now() -> str:
    return _iso(time.time())


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def backoff_delay(failures: int, poll_seconds: float, max_backoff_seconds: float) -> float:
    """Seconds before the next alias check after ``failures`` failed checks in a row.

    ``poll_seconds`` with none, then doubling with each failure, capped at
    ``max_backoff_seconds`` (never below ``poll_seconds``).

    Example:
        >>> [backoff_delay(n, 10, 60) for n in range(5)]
        [10, 20, 40, 60, 60]
    """
    if failures <= 0:
        return poll_seconds
    return max(poll_seconds, min(poll_seconds * 2**failures, max_backoff_seconds))


@dataclass
class ServedModel:
    """A loaded model version: its pipeline answers every route."""

    pipeline: RagPipeline
    uri: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    loaded_at: str = field(default_factory=_now)
    prepared: bool = False  # opened from the master's once-per-host preparation
    answers: AnswerCache = field(default_factory=lambda: AnswerCache(0))  # per version
    batcher: Any = None  # serving.batching.MicroBatcher when RAG_BATCH_WAIT_MS > 0
    requests: int = 0  # requests using this version now (what a micro-batch may wait for)
    _in_flight: int = 0
    _retired: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "run_id": self.run_id,
            "uri": self.uri,
            "loaded_at": self.loaded_at,
        }

    def enter(self) -> None:
        with self._lock:
            self._in_flight += 1

    def exit(self) -> None:
        with self._lock:
            self._in_flight -= 1
            release = self._retired and self._in_flight == 0
        if release:
            self.release()

    def retire(self) -> None:
        """No new requests will use this version; release it once in-flight ones finish."""
        with self._lock:
            self._retired = True
            release = self._in_flight == 0
        if release:
            self.release()

    def release(self) -> None:
        self.pipeline.index.close()
        logger.info("released version %s", self.version)


def load_served_model(uri: str, settings: Settings) -> ServedModel:
    """Open ``uri`` (every artifact verified, on this host) and warm it.

    The first load of ``RAG_MODEL_URI`` in a gunicorn worker opens the version the master
    prepared once per host (``serving.prepare``) without importing MLflow; anything else (hot
    swaps, a failed or missing preparation, tests) resolves and loads it here.

    Raises:
        ModelError: not a rag-model, or its ``retrieval.k`` is above RAG_MAX_K (its default
            answers would break the limit every request is held to).
    """
    prepared = _prepared_result(uri, settings)
    if prepared is not None:
        pipeline = open_prepared(prepared)
        ids = {key: prepared[key] for key in ("name", "version", "alias", "run_id")}
    else:
        pipeline, ids = _load_here(uri)
    k = pipeline.config.retrieval.k
    if k > settings.max_k:
        raise ModelError(
            f"{uri} answers with retrieval.k {k} by default, above this server's RAG_MAX_K "
            f"{settings.max_k}; raise RAG_MAX_K to at least {k} or serve a version with a "
            "smaller k"
        )
    pipeline.warm_up()
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(settings.torch_threads)
    pipeline.answer("warm-up question")  # first-call costs paid here, not by a client
    return ServedModel(pipeline=pipeline, uri=uri, prepared=prepared is not None, **ids)


def _prepared_result(uri: str, settings: Settings) -> dict[str, Any] | None:
    """The master's successful preparation of ``uri``, else None (then load it here)."""
    if not settings.prepared_file or uri != settings.model_uri:
        return None
    result = wait_for(Path(settings.prepared_file), timeout=settings.timeout)
    if result is None:
        logger.warning("%s was not prepared within %d s; loading it here", uri, settings.timeout)
    elif not result.get("ok"):
        logger.warning("preparing %s failed (%s); loading it here", uri, result.get("error"))
        result = None
    return result


def _load_here(uri: str) -> tuple[RagPipeline, dict[str, str | None]]:
    """Resolve and load ``uri`` with ``mlflow.pyfunc`` in this process."""
    import mlflow.pyfunc

    from rag_model.packaging.registry import resolve_model_uri

    ref = resolve_model_uri(uri)
    # suppress_warnings: mlflow's requirement check scans every installed distribution's
    # files, ~3 s of each worker's start (cProfile, bench/README.md); a server runs in the
    # environment requirements-lock.txt pins, and every artifact is still verified
    pyfunc = mlflow.pyfunc.load_model(ref.uri if ref else uri, suppress_warnings=True)
    pipeline = getattr(pyfunc.unwrap_python_model(), "pipeline", None)
    if not isinstance(pipeline, RagPipeline):
        raise ModelError(f"{uri} is not a rag-model model (no pipeline after load_context)")
    ids = {
        "name": ref.name if ref else None,
        "version": ref.version if ref else None,
        "alias": ref.alias if ref else None,
        "run_id": ref.run_id if ref else pyfunc.metadata.run_id,
    }
    return pipeline, ids


def resolve_version(uri: str) -> str | None:
    """The version an alias URI points at now (None for URIs that cannot move)."""
    from rag_model.packaging.registry import resolve_model_uri

    if not uri.startswith("models:/") or "@" not in uri:
        return None
    ref = resolve_model_uri(uri)
    return ref.version if ref else None


class ModelHolder:
    """Holds the served model; loads it in the background and follows its alias."""

    def __init__(
        self,
        settings: Settings,
        model: ServedModel | None = None,
        loader: Callable[[str, Settings], ServedModel] = load_served_model,
        resolver: Callable[[str], str | None] = resolve_version,
        on_event: Callable[[str, str | None, str | None], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.uri = settings.model_uri
        self.poll_seconds: float = settings.poll_seconds
        self.max_backoff_seconds: float = settings.watch_max_backoff_seconds
        if model is not None:
            self._equip(model)
        self.model = model
        self.error: str | None = None  # why the first load failed, while nothing is served
        self.last_failure: dict[str, Any] | None = None
        self.last_check: dict[str, Any] | None = None
        self.reloads = 0
        self.reload_failures = 0
        self.watch_failures = 0  # failed alias checks in a row (0 after one that works)
        self.backoff_seconds = self.poll_seconds  # delay before the next check
        self.next_check_at: float | None = None  # clock() time of the next check
        self._watch_lock = threading.Lock()
        self._clock = clock
        self._loader = loader
        self._resolver = resolver
        # (event, old version, new version): "loaded", "reload", "reload_failure" or
        # "watch_failure" (an alias check failed; new is None)
        self._on_event = on_event or (lambda event, old, new: None)
        self._failed_version: str | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._first_attempt = threading.Event()

    @property
    def state(self) -> str:
        if self.model is not None:
            return "ready"
        return "failed" if self.error else "loading"

    def details(self) -> dict[str, Any]:
        """What /ready reports: state, served version, watcher checks and the last failure."""
        with self._watch_lock:
            checks = {
                "last_check": self.last_check,
                "consecutive_failures": self.watch_failures,
                "backoff_seconds": self.backoff_seconds,
                "next_check_at": _iso(self.next_check_at) if self.next_check_at else None,
            }
        return {
            "state": self.state,
            "model": self.model.describe() if self.model else None,
            "prepared_once_per_host": bool(self.model and self.model.prepared),
            "error": self.error,
            "watch": {
                "uri": self.uri,
                "poll_seconds": self.poll_seconds,
                **checks,
                "reloads": self.reloads,
                "reload_failures": self.reload_failures,
                "last_failure": self.last_failure,
            },
        }

    @contextmanager
    def serving(self) -> Iterator[ServedModel | None]:
        """The current model for one request; it is not released until the request ends."""
        model = self.model
        if model is None:
            yield None
            return
        model.enter()
        with model._lock:
            model.requests += 1
        try:
            yield model
        finally:
            with model._lock:
                model.requests -= 1
            model.exit()

    def start(self) -> None:
        """Load (if no model was given) and then watch the alias, on a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> str:
        """Block until the first load attempt ends (for tests and scripts); return the state."""
        self._first_attempt.wait(timeout)
        return self.state

    def attempted(self) -> bool:
        """Whether the first load attempt has ended (loaded, failed or stopped)."""
        return self._first_attempt.is_set()

    def check_now(self) -> None:
        """One watcher step: load the alias's version if it changed (also used by tests).

        A failed check keeps the served version and doubles the delay before the next one.
        """
        try:
            target = self._resolver(self.uri)
        except Exception as exc:  # registry unreachable: keep serving, back off
            self._check_failed(exc)
            return
        with self._watch_lock:  # /ready reads the three together
            self.watch_failures = 0
            self._schedule(self.poll_seconds)
            self.last_check = {"at": _iso(self._clock()), "ok": True, "version": target}
        current = self.model.version if self.model else None
        if target is None or target == current or target == self._failed_version:
            return
        self._swap_to(target)

    def _check_failed(self, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        with self._watch_lock:  # /ready never sees a failure count without its delay
            self.watch_failures += 1
            delay = backoff_delay(self.watch_failures, self.poll_seconds, self.max_backoff_seconds)
            self._schedule(delay)
            self.last_check = {"at": _iso(self._clock()), "ok": False, "error": error}
        current = self.model.version if self.model else None
        self._on_event("watch_failure", current, None)
        logger.warning(
            "cannot resolve %s (%d failed checks in a row; still serving version %s; "
            "next check in %.0f s): %s",
            self.uri,
            self.watch_failures,
            current,
            delay,
            error,
        )

    def _schedule(self, delay: float) -> None:
        self.backoff_seconds = delay
        self.next_check_at = self._clock() + delay

    def _run(self) -> None:
        if self.model is None:
            self._initial_load()
        self._first_attempt.set()
        with self._watch_lock:
            self._schedule(self.poll_seconds)
        if self.model is not None and self.model.prepared:
            if self._prepared_age() > self.poll_seconds:
                # a worker started long after the master prepared the version (one that
                # replaced a dead worker): the alias may have moved since; look now
                self.check_now()
        while not self._stop.wait(self.backoff_seconds):
            self.check_now()

    def _prepared_age(self) -> float:
        try:
            return time.time() - Path(self.settings.prepared_file).stat().st_mtime
        except OSError:
            return 0.0

    def _initial_load(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                self.model = self._timed_load(self.uri)
                self.error = None
                self._on_event("loaded", None, self.model.version)
                return
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                logger.exception("failed to load %s", self.uri)
                self._first_attempt.set()
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, max(self.poll_seconds, 1.0))

    def _swap_to(self, version: str) -> None:
        name = self.uri[len("models:/") :].split("@", 1)[0]
        try:
            fresh = self._timed_load(f"models:/{name}/{version}")
        except Exception as exc:
            self.reload_failures += 1
            self._failed_version = version
            self.last_failure = {
                "at": _now(),
                "version": version,
                "error": f"{type(exc).__name__}: {exc}",
            }
            self._on_event("reload_failure", self.model.version if self.model else None, version)
            logger.exception(
                "version %s failed to load; still serving %s",
                version,
                self.model.version if self.model else None,
            )
            return
        fresh.uri, fresh.alias = self.uri, self.uri.split("@", 1)[1]
        old, self.model = self.model, fresh  # the swap: one reference assignment
        self._failed_version = None
        self.reloads += 1
        self._on_event("reload", old.version if old else None, version)
        logger.info("now serving version %s (was %s)", version, old.version if old else None)
        if old is not None:
            old.retire()

    def _equip(self, model: ServedModel) -> None:
        """Give a version its own answer cache (a new version starts empty) and batcher."""
        model.answers = AnswerCache(self.settings.answer_cache_size)
        if self.settings.batch_wait_ms > 0:
            from serving.batching import MicroBatcher, answer_batch

            model.batcher = MicroBatcher(
                answer_batch(model.pipeline),
                max_wait=self.settings.batch_wait_ms / 1000,
                max_batch=self.settings.batch_max,
                in_flight=lambda: model.requests,
            )

    def _timed_load(self, uri: str) -> ServedModel:
        started = time.perf_counter()
        model = self._loader(uri, self.settings)
        self._equip(model)
        logger.info(
            "loaded %s (version %s) in %.1f s", uri, model.version, time.perf_counter() - started
        )
        return model
