"""Shadow traffic: a second version answers a sample of live questions, off the request path.

``RAG_SHADOW_URI`` names the shadow version (an alias is followed by its own watcher, as
``RAG_MODEL_URI`` is); ``RAG_SHADOW_SAMPLE`` the share of live questions it also answers. A
sampled request only puts a small job on a bounded queue (``put_nowait``: a full queue drops
the job and counts it) after its live answer is computed, so the shadow never delays, slows
or fails a live answer. One background thread per worker answers the jobs on the shadow
version with the same k and the same filter (the API key's scope included), compares the two
answers (``rag_model.shadow``) and records the pairs in batches as runs of the shadow version
(``rag_model.packaging.shadow_runs``): the tracking store is written from that thread only,
every ``RAG_SHADOW_FLUSH_PAIRS`` pairs or ``RAG_SHADOW_FLUSH_SECONDS``.

Shadowed: ``/v1/query`` answers that were computed (not answer-cache hits, whose latency is a
lookup), each question of ``/v1/query/batch``, and non-streamed chat. The shadow's CPU is
the worker's: the overhead on live traffic is measured by ``bench/shadow_overhead.py``.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from flask import current_app, g, has_request_context
from prometheus_client import Counter, Gauge

from rag_model.pipeline import Answer
from rag_model.shadow import compare
from serving.model_holder import ModelHolder, ServedModel
from serving.settings import Settings

log = logging.getLogger(__name__)

SHADOW_JOBS = Counter(
    "rag_shadow_jobs_total",
    "sampled live questions for the shadow version, by outcome",
    ["outcome"],  # queued, dropped (queue full), answered, failed, unavailable (not loaded)
)
SHADOW_VERSION = Gauge(
    "rag_shadow_version_info",
    "1 for the shadow version a worker has loaded",
    ["version"],
    multiprocess_mode="livemax",
)
SHADOW_RECORDED = Counter("rag_shadow_pairs_recorded_total", "pairs written to the tracking store")
SHADOW_FLUSH_FAILURES = Counter(
    "rag_shadow_flush_failures_total", "batches of pairs the tracking store refused (dropped)"
)


@dataclass(frozen=True)
class Job:
    """What the live request leaves for the shadow: its question, options and answer."""

    question: str
    k: int | None
    where: dict[str, Any] | None
    model: str
    key: str | None  # the API key's name (its scope is already in ``where``)
    live_version: str
    live_documents: list[str]
    live_answer: str
    live_ms: float


class Shadow:
    """The shadow version of one worker, its queue and the thread that answers and records."""

    def __init__(
        self,
        settings: Settings,
        model: ServedModel | None = None,
        recorder: Callable[[], Any] | None = None,
    ) -> None:
        self.settings = settings
        own = replace(  # the shadow's own holder: no prepared copy, no answer cache or batching
            settings,
            model_uri=settings.shadow_uri,
            prepared_file="",
            answer_cache_size=0,
            batch_wait_ms=0,
            shadow_uri="",
            shadow_sample=0.0,
        )
        self.holder = ModelHolder(own, model=model, on_event=_on_shadow_event)
        self.jobs: queue.Queue[Job] = queue.Queue(maxsize=settings.shadow_queue_size)
        self._make_recorder = recorder or _mlflow_recorder
        self._recorder: Any = None
        self._pending: list[dict[str, Any]] = []
        self._pending_lock = threading.Lock()  # the thread appends; flush at exit takes
        self._random = random.Random()
        self._thread: threading.Thread | None = None
        self._failures = 0

    def start(self) -> None:
        """Load the shadow version (in the background) and start answering jobs."""
        if model_given := self.holder.model is not None:
            log.info("shadow version %s given", self.holder.model.version)
        if not model_given:
            self.holder.start()
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def offer(self, answer: Answer, k: int | None, where: Any, model: ServedModel) -> None:
        """On the request path: sample, then queue without waiting (a full queue drops)."""
        if self._random.random() >= self.settings.shadow_sample:
            return
        job = Job(
            question=answer.question,
            k=k,
            where=where,
            model=model.name or "",
            key=g.get("rag_key_name") if has_request_context() else None,
            live_version=str(model.version),
            live_documents=[source.document_id for source in answer.sources],
            live_answer=answer.answer,
            live_ms=float(answer.timings.get("total_ms", 0.0)),
        )
        try:
            self.jobs.put_nowait(job)
        except queue.Full:
            SHADOW_JOBS.labels("dropped").inc()
            return
        SHADOW_JOBS.labels("queued").inc()

    def _run(self) -> None:
        last_flush = time.monotonic()
        while True:
            wait = max(0.05, self.settings.shadow_flush_seconds - (time.monotonic() - last_flush))
            try:
                self._answer(self.jobs.get(timeout=wait))
            except queue.Empty:
                pass
            except Exception:  # never let one job end the thread
                log.exception("shadow job failed")
            now = time.monotonic()
            full = len(self._pending) >= self.settings.shadow_flush_pairs
            if full or now - last_flush >= self.settings.shadow_flush_seconds:
                self.flush()
                last_flush = now

    def _answer(self, job: Job) -> None:
        with self.holder.serving() as model:
            if model is None:
                SHADOW_JOBS.labels("unavailable").inc()
                return
            try:
                answer = model.pipeline.answer(job.question, k=job.k, where=job.where)
            except Exception as exc:  # a failing shadow is counted and logged, never raised
                SHADOW_JOBS.labels("failed").inc()
                self._failures += 1
                if self._failures == 1 or self._failures % 100 == 0:
                    log.warning(
                        "shadow version %s failed (%d failures): %s: %s",
                        model.version,
                        self._failures,
                        type(exc).__name__,
                        exc,
                    )
                return
            shadow_version, shadow_run = str(model.version), model.run_id
        SHADOW_JOBS.labels("answered").inc()
        documents = [source.document_id for source in answer.sources]
        pair: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "question_sha256": hashlib.sha256(job.question.encode()).hexdigest(),
            "model": job.model,
            "key": job.key,
            "live_version": job.live_version,
            "shadow_version": shadow_version,
            "shadow_run_id": shadow_run,
            "k": job.k,
            "live_documents": job.live_documents,
            "shadow_documents": documents,
            "live_ms": round(job.live_ms, 3),
            "shadow_ms": round(float(answer.timings.get("total_ms", 0.0)), 3),
            **compare(job.live_documents, documents, job.live_answer, answer.answer),
        }
        if self.settings.shadow_record_text:
            pair.update(
                question=job.question, live_answer=job.live_answer, shadow_answer=answer.answer
            )
        with self._pending_lock:
            self._pending.append(pair)

    def close(self) -> None:
        """At exit: write the pairs not yet written, then mark this worker's runs finished."""
        self.flush()
        if self._recorder is not None and hasattr(self._recorder, "close"):
            try:
                self._recorder.close()
            except Exception:  # noqa: BLE001 - exiting: nothing left to do about it
                log.warning("could not mark the shadow runs finished")

    def flush(self) -> None:
        """Write the pending pairs as one batch (from the shadow thread; tests call it too)."""
        with self._pending_lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            if self._recorder is None:
                self._recorder = self._make_recorder()
            self._recorder.write(batch)
        except Exception as exc:  # the store is down: drop this batch, keep serving
            SHADOW_FLUSH_FAILURES.inc()
            log.warning(
                "could not record %d shadow pairs: %s: %s", len(batch), type(exc).__name__, exc
            )
            return
        SHADOW_RECORDED.inc(len(batch))


def _on_shadow_event(event: str, old: str | None, new: str | None) -> None:
    if event in ("loaded", "reload"):
        if old:
            SHADOW_VERSION.labels(old).set(0)
        if new:
            SHADOW_VERSION.labels(new).set(1)


def _mlflow_recorder() -> Any:
    from rag_model.packaging.shadow_runs import ShadowRecorder  # MLflow: in the shadow thread

    return ShadowRecorder()


def init_shadow(app: Any, settings: Settings) -> None:
    """Start the shadow version of this worker when RAG_SHADOW_URI is set."""
    if not settings.shadow_uri:
        return
    shadow = Shadow(settings)
    app.extensions["rag_shadow"] = shadow
    shadow.start()


def offer(answers: list[Answer], k: int | None, where: Any, model: ServedModel) -> None:
    """Offer live answers to this app's shadow, if it has one (a no-op otherwise)."""
    shadow = current_app.extensions.get("rag_shadow")
    if shadow is not None:
        for answer in answers:
            shadow.offer(answer, k, where, model)
