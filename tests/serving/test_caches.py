"""The answer cache of /v1/query and the cache counters in /metrics."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from rag_model.embedders import CachingEmbedder
from rag_model.pipeline import RagPipeline
from rag_model.query import Query
from serving import create_app
from serving.answer_cache import AnswerCache
from tests.serving.conftest import TEST_SETTINGS, served_model


def counter(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def app_client(pipeline: RagPipeline, **overrides: object) -> FlaskClient:
    settings = TEST_SETTINGS.__class__(**{**TEST_SETTINGS.__dict__, **overrides})
    return create_app(settings, model=served_model(pipeline)).test_client()


def test_the_lru_keeps_the_most_recently_used_entries() -> None:
    cache = AnswerCache(max_entries=2)
    cache.put("a", {"answer": "A"})
    cache.put("b", {"answer": "B"})
    assert cache.get("a") == {"answer": "A"}  # "a" is now the most recent
    cache.put("c", {"answer": "C"})

    assert cache.get("b") is None and cache.get("a") and cache.get("c")
    assert (cache.hits, cache.misses, len(cache)) == (3, 1, 2)


def test_a_disabled_cache_stores_nothing() -> None:
    cache = AnswerCache(max_entries=0)
    cache.put("a", {"answer": "A"})

    assert not cache.enabled and cache.get("a") is None and len(cache) == 0


def test_filters_with_the_same_content_share_a_key() -> None:
    def key(k: int, where: dict | str | None, include_sources: bool = True) -> object:
        return Query.resolve(" q ", k, where, include_sources, default_k=4).key()

    assert key(3, {"a": 1}) == key(3, '{"a": 1}')  # a mapping or MLflow's JSON text
    assert key(3, {"a": 1}) != key(3, {"a": 2})
    assert key(3, None) != key(3, None, include_sources=False)
    assert key(3, None) != key(4, None)
    assert key(4, None) == Query.resolve("q", None, "", default_k=4).key()  # k=None is default


def test_a_repeated_question_is_answered_from_the_cache(client: FlaskClient) -> None:
    hits, misses = counter("rag_answer_cache_hits_total"), counter("rag_answer_cache_misses_total")
    question = {"question": "What is oxygen?", "k": 2}

    first = client.post("/v1/query", json=question)
    second = client.post("/v1/query", json=question)

    assert first.status_code == second.status_code == 200
    assert "cached" not in first.json and second.json["cached"] is True
    assert {**second.json, "cached": None} == {**first.json, "cached": None}
    assert counter("rag_answer_cache_hits_total") == hits + 1
    assert counter("rag_answer_cache_misses_total") == misses + 1
    assert "rag_answer_cache_hits_total" in client.get("/metrics").get_data(as_text=True)


@pytest.mark.parametrize(
    "other",
    [
        {"question": "What is oxygen?", "k": 3},
        {"question": "What is oxygen?", "k": 2, "include_sources": False},
        {"question": "What is oxygen?", "k": 2, "filter": {"title": "Oxygen"}},
        {"question": "What is iron?", "k": 2},
    ],
)
def test_any_other_option_is_another_answer(client: FlaskClient, other: dict) -> None:
    client.post("/v1/query", json={"question": "What is oxygen?", "k": 2})

    assert "cached" not in client.post("/v1/query", json=other).json


def test_answer_cache_size_zero_turns_it_off(fake_pipeline: RagPipeline) -> None:
    client = app_client(fake_pipeline, answer_cache_size=0)
    misses = counter("rag_answer_cache_misses_total")

    responses = [client.post("/v1/query", json={"question": "What is oxygen?"}) for _ in "ab"]

    assert all("cached" not in response.json for response in responses)
    assert counter("rag_answer_cache_misses_total") == misses  # nothing looked up


def test_embedding_cache_counts_reach_metrics_exactly_once(fake_pipeline: RagPipeline) -> None:
    assert isinstance(fake_pipeline.embedder, CachingEmbedder)
    client = app_client(fake_pipeline, answer_cache_size=0)
    client.get("/health")  # starts counting from the embedder's current totals
    hits, misses = (
        counter("rag_embedding_cache_hits_total"),
        counter("rag_embedding_cache_misses_total"),
    )
    before = fake_pipeline.embedder.hits, fake_pipeline.embedder.misses
    questions = [f"What is element number {n}?" for n in range(8)] * 2

    with ThreadPoolExecutor(4) as pool:  # concurrent requests, as under gthread workers
        list(pool.map(lambda q: client.post("/v1/query", json={"question": q}), questions))

    counted_hits = fake_pipeline.embedder.hits - before[0]
    counted_misses = fake_pipeline.embedder.misses - before[1]
    assert counted_hits > 0 and counted_misses > 0
    assert counter("rag_embedding_cache_hits_total") - hits == counted_hits
    assert counter("rag_embedding_cache_misses_total") - misses == counted_misses


def test_every_response_tells_the_server_time(client: FlaskClient) -> None:
    response = client.post("/v1/query", json={"question": "What is oxygen?"})

    name, _, duration = response.headers["Server-Timing"].partition(";dur=")
    assert name == "app" and float(duration) > 0
