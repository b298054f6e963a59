"""Retrieval modes: dense, bm25 and hybrid (RRF or weighted), filters on both sides, thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_model.build import build_snapshot
from rag_model.config import RagConfig
from rag_model.errors import ConfigError, QueryError
from rag_model.pipeline import RagPipeline
from tests.rag_model.conftest import CORPUS, write_files

BASE = {"embedding": {"model": "hash-embedder"}, "generation": {"generator": "echo"}}


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("modes")
    build_snapshot(RagConfig.from_dict(BASE), write_files(root / "corpus", CORPUS), root / "s")
    return root / "s"


def pipeline(snapshot: Path, **retrieval: object) -> RagPipeline:
    config = RagConfig.from_dict({**BASE, "retrieval": retrieval})
    return RagPipeline.from_snapshot(config, snapshot)


def test_bm25_mode_ranks_by_lexical_score_only(snapshot: Path) -> None:
    results = pipeline(snapshot, mode="bm25").retrieve("Which metal rusts in water?", k=3)
    assert results[0].document_id == "iron.txt"
    assert set(results[0].scores) == {"lexical"}
    assert results[0].score == results[0].scores["lexical"]
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def test_bm25_mode_with_only_stopwords_finds_nothing(snapshot: Path) -> None:
    answer = pipeline(snapshot, mode="bm25").answer("the of and is")
    assert answer.sources == []
    assert answer.answer == "I could not find an answer in the indexed documents."


def test_hybrid_rrf_fuses_both_rankings_and_keeps_per_side_scores(snapshot: Path) -> None:
    hybrid = pipeline(snapshot, mode="hybrid", fusion="rrf", k=5, fetch_k=5, rrf_k=60)
    results = hybrid.retrieve("Which metal rusts in water?", k=5)
    dense = pipeline(snapshot, mode="dense").retrieve("Which metal rusts in water?", k=5)
    lexical = pipeline(snapshot, mode="bm25").retrieve("Which metal rusts in water?", k=5)
    dense_rank = {r.id: rank for rank, r in enumerate(dense, start=1)}
    lexical_rank = {r.id: rank for rank, r in enumerate(lexical, start=1)}
    for result in results:
        expected = sum(
            1 / (60 + ranks[result.id])
            for ranks in (dense_rank, lexical_rank)
            if result.id in ranks
        )
        assert result.scores["fused"] == pytest.approx(expected)
        assert result.score == pytest.approx(expected)
        assert ("dense" in result.scores) == (result.id in dense_rank)
        assert ("lexical" in result.scores) == (result.id in lexical_rank)
    assert results[0].document_id == "iron.txt"


def test_weighted_fusion_with_all_weight_on_one_side_follows_that_side(snapshot: Path) -> None:
    question = "Who built the suspension bridge?"
    lexical_only = pipeline(snapshot, mode="hybrid", fusion="weighted", dense_weight=0.0)
    lexical = pipeline(snapshot, mode="bm25").retrieve(question, k=2)
    assert [r.id for r in lexical_only.retrieve(question, k=2)][:1] == [lexical[0].id]
    top = lexical_only.retrieve(question, k=1)[0]
    assert top.scores["fused"] == pytest.approx(1.0)  # min-max normalised best


def test_filters_apply_to_both_sides(snapshot: Path) -> None:
    where = {"source": "history/normans.md"}
    for mode in ("bm25", "hybrid"):
        results = pipeline(snapshot, mode=mode).retrieve("metal bridge Normans", k=4, where=where)
        assert results
        assert {r.document_id for r in results} == {"history/normans.md"}
    with pytest.raises(QueryError, match="is not a valid where clause") as error:
        pipeline(snapshot, mode="bm25").retrieve("metal", k=2, where={"source": {"$bad": 1}})
    assert error.value.field == "filter"


def test_score_threshold_drops_weak_results(snapshot: Path) -> None:
    everything = pipeline(snapshot, mode="bm25").retrieve("metal rusts", k=5)
    cut = everything[0].score - 1e-9
    kept = pipeline(snapshot, mode="bm25", score_threshold=cut).retrieve("metal rusts", k=5)
    assert [r.id for r in kept] == [everything[0].id]


def test_hybrid_needs_fetch_k_at_least_k() -> None:
    with pytest.raises(ConfigError, match="fetch_k must be at least k in hybrid mode"):
        RagConfig.from_dict({"retrieval": {"mode": "hybrid", "k": 10, "fetch_k": 5}})
    with pytest.raises(ConfigError, match="retrieval.mode: Input should be 'dense', 'bm25'"):
        RagConfig.from_dict({"retrieval": {"mode": "sparse"}})
