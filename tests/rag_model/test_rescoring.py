"""Sentence re-scoring and parent-document (sentence unit) retrieval, on hash-embedder snapshots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag_model.build import build_snapshot
from rag_model.config import RagConfig
from rag_model.documents import RetrievedChunk
from rag_model.errors import ConfigError
from rag_model.parents import SentenceUnitIndex
from rag_model.pipeline import RagPipeline
from rag_model.rescoring import rescore
from rag_model.sentences import SentenceVectors
from tests.rag_model.conftest import CORPUS, write_files

BASE = {"embedding": {"model": "hash-embedder"}, "generation": {"generator": "echo"}}
# one long chunk per document, so a question about one sentence must find it inside its chunk
LONG = {
    **CORPUS,
    "history/castles.txt": (
        "Castles were built across Europe in the middle ages. Stone walls replaced wooden "
        "palisades. Moats and drawbridges defended the gate. The keep held the lord's hall. "
        "Norman castles spread after 1066."
    ),
}


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rescoring")
    # echo generator: the sentence vectors are there because retrieval asks for them
    config = RagConfig.from_dict({**BASE, "retrieval": {"sentence_weight": 0.5}})
    build_snapshot(config, write_files(root / "corpus", LONG), root / "s")
    return root / "s"


def pipeline(snapshot: Path, **retrieval: object) -> RagPipeline:
    config = RagConfig.from_dict({**BASE, "retrieval": retrieval})
    return RagPipeline.from_snapshot(config, snapshot)


def _store(vectors: list[list[float]], spans: dict[str, tuple[int, int]]) -> SentenceVectors:
    return SentenceVectors(np.array(vectors, dtype=np.float32), spans)


def _chunk(identifier: str, text: str, score: float) -> RetrievedChunk:
    return RetrievedChunk(identifier, identifier, text, score, scores={"dense": score})


def test_rescore_fuses_normalised_chunk_and_best_sentence_scores() -> None:
    store = _store(
        [[1, 0], [0, 1], [0.6, 0.8]],
        {"a": (0, 2), "b": (2, 1)},
    )
    chunks = [_chunk("a", "First one. Second one.", 0.9), _chunk("b", "Only one.", 0.5)]
    question = np.array([0.0, 1.0], dtype=np.float32)

    chunk_only = rescore(chunks, question, store, weight=0.0)
    sentence_only = rescore(chunks, question, store, weight=1.0)
    half = rescore(chunks, question, store, weight=0.5)

    assert [c.id for c in chunk_only] == ["a", "b"]
    # a's best sentence is its second (cosine 1.0), b's only one 0.8: a stays first
    assert [c.id for c in sentence_only] == ["a", "b"]
    assert sentence_only[0].best_sentence == "Second one."
    assert sentence_only[0].scores["sentence"] == pytest.approx(1.0)
    assert sentence_only[1].scores["sentence"] == pytest.approx(0.8)
    assert half[0].score == pytest.approx(1.0)  # both normalised scores are the best
    assert half[1].score == pytest.approx(0.0)
    assert half[0].scores["dense"] == pytest.approx(0.9)  # earlier scores are kept


def test_rescore_lets_a_matching_sentence_lift_a_lower_chunk() -> None:
    store = _store([[1, 0], [0, 1]], {"a": (0, 1), "b": (1, 1)})
    chunks = [_chunk("a", "Off topic.", 0.9), _chunk("b", "On topic.", 0.8)]
    question = np.array([0.0, 1.0], dtype=np.float32)

    assert [c.id for c in rescore(chunks, question, store, weight=0.7)] == ["b", "a"]
    assert [c.id for c in rescore(chunks, question, store, weight=0.3)] == ["a", "b"]


def test_rescore_ranks_a_chunk_without_sentence_vectors_instead_of_dropping_it() -> None:
    store = _store([[0, 1]], {"b": (0, 1)})
    chunks = [_chunk("a", "Unknown.", 0.9), _chunk("b", "On topic.", 0.1)]

    results = rescore(chunks, np.array([0.0, 1.0], dtype=np.float32), store, weight=0.9)

    assert [c.id for c in results] == ["b", "a"]
    assert results[1].best_sentence is None and "sentence" not in results[1].scores


def test_sentence_units_return_each_parent_once_scored_by_its_best_sentence() -> None:
    store = _store(
        [[1, 0], [0.8, 0.6], [0.6, 0.8], [0, 1]],
        {"a": (0, 2), "empty": (2, 0), "b": (2, 2)},
    )
    units = SentenceUnitIndex(store)

    found = units.search(np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32), k=5)

    assert [(i, round(s, 3), p) for i, s, p in found[0]] == [("b", 1.0, 1), ("a", 0.6, 1)]
    assert [(i, round(s, 3), p) for i, s, p in found[1]] == [("a", 1.0, 0), ("b", 0.6, 0)]
    allowed = units.search(np.array([[0.0, 1.0]], dtype=np.float32), k=5, allowed={"a"})
    assert [i for i, _, _ in allowed[0]] == ["a"]


def test_pipeline_returns_the_matching_sentence_with_each_source(snapshot: Path) -> None:
    question = "What defended the gate of castles?"
    results = pipeline(snapshot, mode="hybrid", sentence_weight=0.5).retrieve(question, k=2)

    assert results[0].document_id == "history/castles.txt"
    assert results[0].best_sentence == "Moats and drawbridges defended the gate."
    assert {"sentence", "fused"} <= set(results[0].scores)
    assert results[0].to_dict()["best_sentence"] == results[0].best_sentence
    plain = pipeline(snapshot, mode="hybrid").retrieve(question, k=2)
    assert "best_sentence" not in plain[0].to_dict()  # only when re-scoring ran


def test_rescoring_in_bm25_mode_uses_the_question_vector(snapshot: Path) -> None:
    rescored = pipeline(snapshot, mode="bm25", sentence_weight=0.5)
    assert rescored.retriever.needs_vector
    results = rescored.retrieve("castles gate moats", k=3)
    assert results[0].best_sentence == "Moats and drawbridges defended the gate."


def test_parent_document_retrieval_returns_deduplicated_parent_chunks(snapshot: Path) -> None:
    parent = pipeline(snapshot, mode="dense", search_unit="sentence")
    results = parent.retrieve("Who built the suspension bridge?", k=4)

    ids = [r.id for r in results]
    assert len(ids) == len(set(ids)) == 4
    assert results[0].document_id == "history/bridge.txt"
    assert results[0].best_sentence == "Brunel built the suspension bridge in 1864."
    assert results[0].score == pytest.approx(results[0].scores["dense"])
    filtered = parent.retrieve("bridge", k=4, where={"source": "music/violin.txt"})
    assert {r.document_id for r in filtered} == {"music/violin.txt"}


@pytest.mark.parametrize("fusion", ["weighted", "rrf"])
def test_both_units_fuse_chunk_sentence_and_lexical_signals(snapshot: Path, fusion: str) -> None:
    question = "What defended the gate of castles?"
    both = pipeline(snapshot, mode="hybrid", search_unit="both", fusion=fusion)
    results = both.retrieve(question, k=4)

    ids = [r.id for r in results]
    assert len(ids) == len(set(ids)) == 4
    assert results[0].document_id == "history/castles.txt"
    assert results[0].best_sentence == "Moats and drawbridges defended the gate."
    assert {"dense", "sentence", "lexical", "fused"} <= set(results[0].scores)
    if fusion == "weighted":  # dense weight 0.5 split evenly: at most 0.25 + 0.25 + 0.5
        top = results[0].scores
        assert top["fused"] <= 1.0 + 1e-9
        chunk_only = pipeline(snapshot, mode="hybrid").retrieve(question, k=4)
        assert "sentence" not in chunk_only[0].scores
    dense_both = pipeline(snapshot, mode="dense", search_unit="both").retrieve(question, k=4)
    assert {"dense", "sentence"} <= set(dense_both[0].scores)
    filtered = both.retrieve("bridge", k=4, where={"source": "music/violin.txt"})
    assert {r.document_id for r in filtered} == {"music/violin.txt"}


def test_sentence_options_refuse_a_snapshot_or_config_without_sentence_vectors(
    tmp_path: Path,
) -> None:
    build_snapshot(RagConfig.from_dict(BASE), write_files(tmp_path / "c", CORPUS), tmp_path / "s")
    with pytest.raises(ConfigError, match="sentence_weight > 0 need.*rebuild it with"):
        pipeline(tmp_path / "s", sentence_weight=0.3)
    with pytest.raises(ConfigError, match="search_unit 'sentence' need.*sentence_vectors: true"):
        RagConfig.from_dict(
            {"index": {"sentence_vectors": False}, "retrieval": {"search_unit": "sentence"}}
        )
    with pytest.raises(ConfigError, match="search_unit 'both' need.*sentence_vectors: true"):
        RagConfig.from_dict(
            {"index": {"sentence_vectors": False}, "retrieval": {"search_unit": "both"}}
        )
    with pytest.raises(ConfigError, match=r"retrieval.sentence_weight: .*less than or equal to 1"):
        RagConfig.from_dict({"retrieval": {"sentence_weight": 1.5}})
    with pytest.raises(ConfigError, match=r"retrieval.sentence_depth: .*greater than 0"):
        RagConfig.from_dict({"retrieval": {"sentence_depth": 0}})
