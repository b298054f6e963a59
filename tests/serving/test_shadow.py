"""The shadow version in one worker (serving/shadow.py) with injected models: fast, no MLflow."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest

from rag_model.errors import GenerationError
from rag_model.pipeline import RagPipeline
from rag_model.shadow import compare, summarise, token_f1
from serving import create_app
from serving.model_holder import ServedModel
from serving.settings import Settings
from serving.shadow import Shadow
from tests.serving.conftest import TEST_SETTINGS, served_model
from tests.serving.live import wait_for


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []

    def write(self, pairs: Sequence[dict[str, Any]]) -> None:
        self.batches.append(list(pairs))


class Failing:
    """A pipeline whose answers fail (an LLM that is down), or wait first."""

    def __init__(self, pipeline: RagPipeline, sleep: float = 0.0, fail: bool = True) -> None:
        self.pipeline, self.sleep, self.fail = pipeline, sleep, fail

    def answer(self, question: str, k: Any = None, where: Any = None):  # noqa: ANN201
        time.sleep(self.sleep)
        if self.fail:
            raise GenerationError("the LLM is down")
        return self.pipeline.answer(question, k=k, where=where)


def shadow_of(pipeline: Any, **overrides: Any) -> tuple[Shadow, Recorder]:
    settings = Settings(
        **{
            **TEST_SETTINGS.__dict__,
            "shadow_uri": "models:/fake@candidate",
            "shadow_sample": 1.0,
            "shadow_flush_seconds": 3600,
            **overrides,
        }
    )
    model = ServedModel(pipeline=pipeline, uri="models:/fake/4", name="fake", version="4")
    recorder = Recorder()
    shadow = Shadow(settings, model=model, recorder=lambda: recorder)
    return shadow, recorder


def live_answer(pipeline: RagPipeline, question: str = "What is oxygen?"):
    return pipeline.answer(question, k=3), served_model(pipeline)


def test_pairs_are_compared_and_recorded_in_a_batch(fake_pipeline: RagPipeline) -> None:
    shadow, recorder = shadow_of(fake_pipeline, shadow_flush_pairs=3)
    shadow.start()
    for question in ("What is oxygen?", "Who were the Normans?", "What is the Black Death?"):
        answer, model = live_answer(fake_pipeline, question)
        shadow.offer(answer, 3, None, model)
    wait_for(lambda: recorder.batches, timeout=30)
    (batch,) = recorder.batches
    assert len(batch) == 3
    pair = batch[0]
    assert (pair["model"], pair["live_version"], pair["shadow_version"]) == ("fake", "3", "4")
    assert pair["jaccard"] == 1.0 and pair["top1_agreement"] == 1.0 and pair["answer_f1"] == 1.0
    assert len(pair["question_sha256"]) == 64 and "question" not in pair  # no text by default
    assert pair["live_documents"] == pair["shadow_documents"]


def test_the_text_is_recorded_only_when_asked(fake_pipeline: RagPipeline) -> None:
    shadow, recorder = shadow_of(fake_pipeline, shadow_record_text=True)
    answer, model = live_answer(fake_pipeline)
    shadow.offer(answer, 3, None, model)
    shadow._answer(shadow.jobs.get_nowait())  # the thread's step, run here
    shadow.flush()
    assert recorder.batches[0][0]["question"] == "What is oxygen?"


def test_a_full_queue_drops_and_a_failing_shadow_is_counted(fake_pipeline: RagPipeline) -> None:
    shadow, recorder = shadow_of(Failing(fake_pipeline), shadow_queue_size=2)
    answer, model = live_answer(fake_pipeline)
    for _ in range(5):  # no thread started: the queue fills, then drops
        shadow.offer(answer, 3, None, model)
    assert shadow.jobs.qsize() == 2
    while not shadow.jobs.empty():
        shadow._answer(shadow.jobs.get_nowait())  # fails, counted, never raised
    shadow.flush()
    assert shadow._failures == 2 and recorder.batches == []


def test_sample_zero_point_five_shadows_about_half(fake_pipeline: RagPipeline) -> None:
    shadow, _ = shadow_of(fake_pipeline, shadow_sample=0.5, shadow_queue_size=1000)
    shadow._random.seed(7)
    answer, model = live_answer(fake_pipeline)
    for _ in range(400):
        shadow.offer(answer, 3, None, model)
    assert 150 < shadow.jobs.qsize() < 250


def test_settings_refuse_a_sample_without_a_uri_or_out_of_range() -> None:
    from rag_model.errors import ConfigError

    with pytest.raises(ConfigError, match="RAG_SHADOW_SAMPLE is set but RAG_SHADOW_URI is not"):
        Settings.from_env({"RAG_SHADOW_SAMPLE": "0.5"})
    with pytest.raises(ConfigError, match="RAG_SHADOW_SAMPLE must be between 0 and 1, got 2.0"):
        Settings.from_env({"RAG_SHADOW_SAMPLE": "2", "RAG_SHADOW_URI": "models:/m@c"})
    with pytest.raises(ConfigError, match="RAG_SHADOW_SAMPLE must be a number, got 'half'"):
        Settings.from_env({"RAG_SHADOW_SAMPLE": "half"})
    with pytest.raises(ConfigError, match="RAG_SHADOW_RECORD_TEXT must be true or false"):
        Settings.from_env({"RAG_SHADOW_RECORD_TEXT": "yes please"})


def test_the_measures() -> None:
    assert token_f1("The Normans conquered England. [1]", "normans conquered england") == 1.0
    assert token_f1("in 1066", "in 1067") == 0.5
    assert compare(["a", "b"], ["b", "c"], "x", "y") == {
        "jaccard": 1 / 3,
        "top1_agreement": 0.0,
        "answer_f1": 0.0,
    }
    pairs = [
        {
            "model": "m",
            "live_version": "1",
            "shadow_version": "2",
            "jaccard": j,
            "top1_agreement": t,
            "answer_f1": 1.0,
            "live_ms": 10.0,
            "shadow_ms": 20.0,
        }
        for j, t in ((1.0, 1.0), (0.5, 0.0))
    ]
    (summary,) = summarise(pairs)
    assert (summary.pairs, summary.jaccard, summary.top1_agreement) == (2, 0.75, 0.5)


def test_routes_offer_their_answers_to_the_shadow(fake_pipeline: RagPipeline) -> None:
    app = create_app(TEST_SETTINGS, model=served_model(fake_pipeline))
    shadow, _ = shadow_of(fake_pipeline, shadow_queue_size=100)
    app.extensions["rag_shadow"] = shadow
    client = app.test_client()
    client.post("/v1/query", json={"question": "What is oxygen?"})
    client.post("/v1/query", json={"question": "What is oxygen?"})  # a cache hit: not shadowed
    client.post("/v1/query/batch", json={"questions": ["a?", "b?"]})
    chat = {"model": "fake", "messages": [{"role": "user", "content": "Who?"}]}
    client.post("/v1/chat/completions", json=chat)
    assert shadow.jobs.qsize() == 4
