"""Micro-batching inside one worker: concurrent requests encoded and searched as one batch.

With gthread workers (RAG_THREADS > 1) several requests run in one process at once. Each hands
its work to ``MicroBatcher.submit`` and waits; one collector thread gathers what is queued for
at most ``max_wait`` seconds (or until ``max_batch`` items, or until every request in flight
has joined) and runs the batch with one call. A lone request does not wait at all: when no
other request is in flight there is nothing to gather.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

from rag_model import tracing
from rag_model.pipeline import Answer, RagPipeline

Item = TypeVar("Item")
Result = TypeVar("Result")


class MicroBatcher(Generic[Item, Result]):
    """Runs ``run_batch`` on batches of concurrently submitted items.

    ``run_batch(items)`` returns one result per item, in order; an exception instance in that
    list is raised in the request that submitted its item. If ``run_batch`` itself raises, the
    items are run one by one, so a failure reaches only the request that caused it.

    Example:
        >>> batcher = MicroBatcher(lambda items: [i * 2 for i in items], max_wait=0.002)
        >>> batcher.submit(21)
        42
    """

    def __init__(
        self,
        run_batch: Callable[[list[Item]], Sequence[Result | BaseException]],
        max_wait: float,
        max_batch: int = 16,
        in_flight: Callable[[], int] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait < 0:
            raise ValueError(f"max_wait must be >= 0 seconds, got {max_wait}")
        self.run_batch = run_batch
        self.max_wait = max_wait
        self.max_batch = max_batch
        # how many requests could still join a batch; None: assume more may always come
        self.in_flight = in_flight
        self.batch_sizes: list[int] = []  # recent sizes, for tests and the benchmark
        self._queue: queue.SimpleQueue[tuple[Item, Future[Result]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pid: int | None = None

    def submit(self, item: Item) -> Result:
        """Queue ``item``, wait for its batch, and return its result (or raise its error)."""
        self._ensure_collector()
        future: Future[Result] = Future()
        self._queue.put((item, future))
        return future.result()

    def _ensure_collector(self) -> None:
        with self._lock:  # one collector per process: a forked worker starts its own
            if self._pid != os.getpid():
                self._queue = queue.SimpleQueue()
                thread = threading.Thread(target=self._collect, name="micro-batcher", daemon=True)
                thread.start()
                self._pid = os.getpid()

    def _collect(self) -> None:
        while True:
            batch = [self._queue.get()]
            deadline = time.perf_counter() + self.max_wait
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                    continue
                except queue.Empty:
                    pass
                remaining = deadline - time.perf_counter()
                if remaining <= 0 or not self._more_may_come(len(batch)):
                    break
                try:
                    batch.append(self._queue.get(timeout=remaining))
                except queue.Empty:
                    break
            self._run(batch)

    def _more_may_come(self, gathered: int) -> bool:
        return self.in_flight is None or self.in_flight() > gathered

    def _run(self, batch: list[tuple[Item, Future[Result]]]) -> None:
        self.batch_sizes = [*self.batch_sizes[-999:], len(batch)]
        items = [item for item, _ in batch]
        try:
            results: list[object] = list(self.run_batch(items))
            if len(results) != len(items):
                raise RuntimeError(f"run_batch gave {len(results)} results for {len(items)} items")
        except Exception as exc:
            # which item failed? each runs alone, so the error reaches only its own request
            results = [exc] if len(items) == 1 else [self._alone(item) for item in items]
        for (_, future), result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    def _alone(self, item: Item) -> object:
        try:
            return self.run_batch([item])[0]
        except Exception as exc:
            return exc


# (question, k, filter) or (question, k, filter, the request's RecordingTracer or None,
# whether content tracing is on for it)
Query = tuple[Any, ...]


def answer_batch(pipeline: RagPipeline) -> Callable[[list[Query]], list[Answer]]:
    """A ``run_batch`` for /v1/query: (question, k, filter[, tracer]) items -> answers, in order.

    Items with the same k and filter are answered together by ``pipeline.answer_many``. When
    some of them come from sampled requests (a ``RecordingTracer`` as fourth element), the
    call is recorded once and each of those requests gets its own trace out of it
    (``serving.tracing.split_batch``): its question, its answer, the shared steps.
    """

    def run(items: list[Query]) -> list[Answer]:
        groups: dict[str, list[int]] = {}
        for position, item in enumerate(items):
            key = json.dumps([item[1], item[2]], sort_keys=True, default=str)
            groups.setdefault(key, []).append(position)
        answers: list[Answer | None] = [None] * len(items)
        for positions in groups.values():
            _, k, where = items[positions[0]][:3]
            questions = [items[position][0] for position in positions]
            tracers = [items[p][3] if len(items[p]) > 3 else None for p in positions]
            content = all(items[p][4] for p in positions if len(items[p]) > 4)
            with _traced(tracers, content):
                found = pipeline.answer_many(questions, k, where)
            for position, answer in zip(positions, found, strict=True):
                answers[position] = answer
        return answers  # type: ignore[return-value] - every position was filled

    return run


def _traced(tracers: list[Any], content: bool) -> AbstractContextManager[None]:
    """Record the group's call when any of its requests is sampled; else trace nothing."""
    tracers = [t if isinstance(t, tracing.RecordingTracer) else None for t in tracers]
    if not any(tracers):
        return tracing.use_tracer(None)
    from serving.tracing import split_batch

    count = len(tracers)

    def sink(spans: list[tracing.SpanRecord]) -> None:
        for position, tracer in enumerate(tracers):
            if tracer is not None:
                tracer.sink(split_batch(spans, position, count))

    return tracing.use_tracer(tracing.RecordingTracer(sink), content)
