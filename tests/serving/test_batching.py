"""Micro-batching: batched answers equal lone answers, batches respect their cap, errors stay put.

No timings are asserted: how much batching saves is measured in bench/, not here.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from rag_model.errors import QueryError
from rag_model.pipeline import RagPipeline
from serving import create_app
from serving.batching import MicroBatcher, answer_batch
from tests.serving.conftest import TEST_SETTINGS, served_model

QUESTIONS = [
    "What is oxygen used for?",
    "Who were the Normans?",
    "When did the Black Death reach Europe?",
    "What powers a steam engine?",
    "How large is the Amazon rainforest?",
    "Who was the duke at Hastings?",
]


class Gate:
    """Holds the first batch until the test has queued the rest, so batches are predictable."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()
        self.sizes: list[int] = []

    def __call__(self, items: list) -> list:
        self.sizes.append(len(items))
        if len(self.sizes) == 1:
            self.entered.set()
            assert self.release.wait(60), "the test never released the first batch"
        return self.inner(items)


def submit_all(batcher: MicroBatcher, gate: Gate, first: object, rest: list) -> list:
    """Submit ``first`` alone, queue ``rest`` while it runs, release; results in order."""
    outcomes: dict[int, object] = {}

    def submit(position: int, item: object) -> None:
        try:
            outcomes[position] = batcher.submit(item)
        except Exception as exc:  # the test inspects which request got which error
            outcomes[position] = exc

    threads = [threading.Thread(target=submit, args=(0, first))]
    threads[0].start()
    assert gate.entered.wait(60)
    for position, item in enumerate(rest, start=1):
        threads.append(threading.Thread(target=submit, args=(position, item)))
        threads[-1].start()
    while batcher._queue.qsize() < len(rest):  # noqa: SLF001 - wait until all are queued
        threading.Event().wait(0.001)
    gate.release.set()
    for thread in threads:
        thread.join(60)
    return [outcomes[position] for position in range(len(rest) + 1)]


def test_batches_never_exceed_the_cap_and_keep_the_order() -> None:
    gate = Gate(lambda items: [item * 2 for item in items])
    batcher = MicroBatcher(gate, max_wait=0.0, max_batch=4)

    results = submit_all(batcher, gate, 0, list(range(1, 20)))

    assert results == [item * 2 for item in range(20)]
    assert gate.sizes == [1, 4, 4, 4, 4, 3]  # the queued 19 in batches of at most 4


def test_an_error_reaches_only_the_request_that_caused_it() -> None:
    def double(items: list) -> list:
        if "bad" in items:
            raise ValueError("bad item")
        return [item * 2 for item in items]

    gate = Gate(double)
    batcher = MicroBatcher(gate, max_wait=0.0, max_batch=8)

    results = submit_all(batcher, gate, 1, [2, "bad", 3])

    assert results[:2] == [2, 4] and results[3] == 6
    assert isinstance(results[2], ValueError) and str(results[2]) == "bad item"
    assert gate.sizes[:2] == [1, 3]  # then each of the failed batch's items alone


def test_an_exception_returned_for_one_item_is_raised_in_its_request() -> None:
    gate = Gate(lambda items: [KeyError(i) if i == 2 else i for i in items])
    batcher = MicroBatcher(gate, max_wait=0.0, max_batch=8)

    results = submit_all(batcher, gate, 0, [1, 2, 3])

    assert results[:2] == [0, 1] and results[3] == 3 and isinstance(results[2], KeyError)


def test_a_lone_request_does_not_wait_for_company() -> None:
    sizes: list[int] = []
    batcher = MicroBatcher(
        lambda items: sizes.append(len(items)) or items, max_wait=3600, in_flight=lambda: 1
    )
    done = threading.Thread(target=batcher.submit, args=("alone",))
    done.start()
    done.join(60)  # would hang for an hour if the collector waited out max_wait

    assert not done.is_alive() and sizes == [1]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch must be >= 1, got 0"):
        MicroBatcher(lambda items: items, max_wait=0.001, max_batch=0)
    with pytest.raises(ValueError, match="max_wait must be >= 0 seconds, got -1"):
        MicroBatcher(lambda items: items, max_wait=-1)


def test_batched_answers_equal_lone_answers(fake_pipeline: RagPipeline) -> None:
    gate = Gate(answer_batch(fake_pipeline))
    batcher = MicroBatcher(gate, max_wait=0.0, max_batch=16)
    items = [(q, 2, None) for q in QUESTIONS] + [(QUESTIONS[0], 3, {"title": "Oxygen"})]

    batched = submit_all(batcher, gate, items[0], items[1:])

    assert gate.sizes == [1, len(items) - 1]  # k and filter groups answered in one batch
    for (question, k, where), answer in zip(items, batched, strict=True):
        alone = fake_pipeline.answer(question, k=k, where=where)
        assert answer.answer == alone.answer and answer.citations == alone.citations
        assert [s.id for s in answer.sources] == [s.id for s in alone.sources]
        assert [s.score for s in answer.sources] == pytest.approx([s.score for s in alone.sources])


def test_a_bad_filter_fails_only_its_own_request(fake_pipeline: RagPipeline) -> None:
    gate = Gate(answer_batch(fake_pipeline))
    batcher = MicroBatcher(gate, max_wait=0.0, max_batch=16)
    bad = (QUESTIONS[1], 2, {"title": {"$bad": 1}})

    results = submit_all(batcher, gate, (QUESTIONS[0], 2, None), [bad, (QUESTIONS[2], 2, None)])

    assert isinstance(results[1], QueryError) and results[1].field == "filter"
    assert results[0].citations and results[2].citations


def test_the_server_answers_concurrent_requests_in_batches(fake_pipeline: RagPipeline) -> None:
    settings = TEST_SETTINGS.__class__(
        **{**TEST_SETTINGS.__dict__, "batch_wait_ms": 50, "answer_cache_size": 0}
    )
    app = create_app(settings, model=served_model(fake_pipeline))
    model = app.extensions["rag_model"].model
    client = app.test_client()

    with ThreadPoolExecutor(len(QUESTIONS)) as pool:
        responses = list(
            pool.map(lambda q: client.post("/v1/query", json={"question": q}), QUESTIONS * 3)
        )

    assert all(response.status_code == 200 for response in responses)
    assert model.batcher is not None and sum(model.batcher.batch_sizes) == len(QUESTIONS) * 3
    for question, response in zip(QUESTIONS * 3, responses, strict=True):
        assert response.json["answer"] == fake_pipeline.answer(question).answer
