"""Tests for RagPipeline over a real Chroma snapshot: answers, validation, and the real MiniLM."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rag_model.build import BuildResult, build_snapshot
from rag_model.config import RagConfig
from rag_model.embedders import CachingEmbedder, HashEmbedder
from rag_model.errors import IndexNotFoundError, IntegrityError, QueryError
from rag_model.generators import EchoGenerator, ExtractiveGenerator
from rag_model.index import ChromaIndex
from rag_model.pipeline import Answer, RagPipeline

HASH_CONFIG = {"embedding": {"model": "hash-embedder"}, "generation": {"generator": "echo"}}


@pytest.fixture(scope="module")
def pipeline(hash_snapshot: BuildResult):
    opened = RagPipeline.from_snapshot(RagConfig.from_dict(HASH_CONFIG), hash_snapshot.snapshot_dir)
    yield opened
    opened.index.close()


def test_from_snapshot_builds_what_the_config_names(pipeline: RagPipeline) -> None:
    # query-time vectors go through a cache in front of the configured embedder
    assert isinstance(pipeline.embedder, CachingEmbedder)
    assert isinstance(pipeline.embedder.inner, HashEmbedder)
    assert isinstance(pipeline.generator, EchoGenerator)
    assert pipeline.index.chunk_count == 5


def test_answer_retrieves_generates_and_times(pipeline: RagPipeline) -> None:
    answer = pipeline.answer("Who built the suspension bridge?")

    assert isinstance(answer, Answer)
    assert answer.question == "Who built the suspension bridge?"
    assert len(answer.sources) == 4  # the config's default k
    assert answer.sources[0].document_id == "history/bridge.txt"
    assert answer.answer == "Brunel built the suspension bridge in 1864. [1]"
    assert answer.citations == [answer.sources[0].id]
    assert set(answer.timings) == {"embed_ms", "retrieve_ms", "generate_ms", "total_ms"}
    scores = [source.score for source in answer.sources]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("k", [1, 2, 5])
def test_answer_respects_k(pipeline: RagPipeline, k: int) -> None:
    assert len(pipeline.answer("What is iron used for?", k=k).sources) == k


def test_retrieve_gives_the_same_sources_as_answer(pipeline: RagPipeline) -> None:
    question = "When did the Normans conquer England?"

    retrieved = pipeline.retrieve(question, k=3)

    assert retrieved == pipeline.answer(question, k=3).sources
    assert retrieved[0].document_id == "history/normans.md"


def test_the_question_is_stripped(pipeline: RagPipeline) -> None:
    assert pipeline.answer("  Who built the bridge?\n").question == "Who built the bridge?"


def test_where_filter_restricts_the_sources(pipeline: RagPipeline) -> None:
    answer = pipeline.answer("Who built the suspension bridge?", k=3, where={"title": "Oxygen"})

    assert [source.document_id for source in answer.sources] == ["oxygen.md"]
    assert answer.citations == [answer.sources[0].id]


@pytest.mark.parametrize("question", ["", "   \n\t", None, 42])
def test_empty_question_is_refused(pipeline: RagPipeline, question: object) -> None:
    with pytest.raises(QueryError, match="^question must be a non-empty string$") as caught:
        pipeline.answer(question)  # type: ignore[arg-type]

    assert caught.value.field == "question"


@pytest.mark.parametrize(
    ("k", "message"),
    [
        (0, "k must be between 1 and 200, got 0"),
        (-1, "k must be between 1 and 200, got -1"),
        (201, "k must be between 1 and 200, got 201"),
        ("3", "k must be an integer between 1 and 200, got '3'"),
        (True, "k must be an integer between 1 and 200, got True"),
        (2.5, "k must be an integer between 1 and 200, got 2.5"),
    ],
)
def test_invalid_k_is_refused(pipeline: RagPipeline, k: object, message: str) -> None:
    with pytest.raises(QueryError, match=f"^{re.escape(message)}$") as caught:
        pipeline.answer("Who built the bridge?", k=k)  # type: ignore[arg-type]

    assert caught.value.field == "k"


@pytest.mark.parametrize(
    ("where", "kind"), [("title=Oxygen", "a JSON object"), (["title", "Oxygen"], "an object")]
)
def test_filter_that_is_not_a_mapping_is_refused(
    pipeline: RagPipeline, where: object, kind: str
) -> None:
    with pytest.raises(
        QueryError,
        match=re.escape(f'filter must be {kind} such as {{"title": "Oxygen"}}, got {where!r}'),
    ) as caught:
        pipeline.answer("Who built the bridge?", where=where)  # type: ignore[arg-type]

    assert caught.value.field == "filter"


def test_malformed_filter_mapping_is_refused(pipeline: RagPipeline) -> None:
    with pytest.raises(
        QueryError, match=r"^filter\['title'\] is not a valid where clause"
    ) as caught:
        pipeline.answer("Who built the bridge?", where={"title": {"$bad": 1}})

    assert caught.value.field == "filter"


def test_retrieve_validates_like_answer(pipeline: RagPipeline) -> None:
    with pytest.raises(QueryError, match="k must be between 1 and 200, got 0"):
        pipeline.retrieve("Who built the bridge?", k=0)


def test_config_naming_another_embedder_than_the_index_is_refused(
    hash_snapshot: BuildResult,
) -> None:
    index = ChromaIndex.open(hash_snapshot.snapshot_dir)

    with pytest.raises(
        IntegrityError,
        match=re.escape(
            "the index was built with embedder 'hash-embedder' but the config names "
            "'sentence-transformers/all-MiniLM-L6-v2'; rebuild the index with this config"
        ),
    ):
        RagPipeline(RagConfig(), index, HashEmbedder(), EchoGenerator())


def test_from_snapshot_of_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="no Chroma snapshot at"):
        RagPipeline.from_snapshot(RagConfig.from_dict(HASH_CONFIG), tmp_path / "nowhere")


def test_answer_to_dict(pipeline: RagPipeline) -> None:
    answer = pipeline.answer("Who built the suspension bridge?", k=2)

    full = answer.to_dict()
    short = answer.to_dict(include_sources=False)

    assert set(full) == {"answer", "citations", "sources", "timings"}
    assert set(short) == {"answer", "citations", "timings"}
    assert short["answer"] == full["answer"] == answer.answer
    assert short["citations"] == [answer.sources[0].id]
    assert set(short["timings"]) == {"embed_ms", "retrieve_ms", "generate_ms", "total_ms"}
    first = full["sources"][0]
    assert set(first) == {"id", "document_id", "text", "score", "scores", "metadata"}
    assert first["document_id"] == "history/bridge.txt"
    assert first["metadata"]["source"] == "history/bridge.txt"
    assert first["score"] == round(answer.sources[0].score, 6)
    assert json.loads(json.dumps(full)) == full


def test_extractive_pipeline_with_the_hash_embedder(hash_snapshot: BuildResult) -> None:
    config = RagConfig.from_dict(
        {"embedding": {"model": "hash-embedder"}, "generation": {"max_sentences": 1}}
    )
    pipeline = RagPipeline.from_snapshot(config, hash_snapshot.snapshot_dir)
    try:
        answer = pipeline.answer("Which metal rusts in water?", k=3)
    finally:
        pipeline.index.close()

    assert isinstance(pipeline.generator, ExtractiveGenerator)
    assert answer.sources[0].document_id == "iron.txt"
    assert answer.answer == "Iron rusts when it meets water and air. [1]"
    assert answer.citations == [answer.sources[0].id]


@pytest.mark.integration
def test_minilm_build_and_answer(corpus_dir: Path, tmp_path: Path) -> None:
    config = RagConfig()  # the real all-MiniLM-L6-v2 and the extractive generator
    result = build_snapshot(config, corpus_dir, tmp_path / "snapshot")
    assert result.manifest["embedder"] == "sentence-transformers/all-MiniLM-L6-v2"

    pipeline = RagPipeline.from_snapshot(config, tmp_path / "snapshot")
    try:
        answer = pipeline.answer("In which year did the Normans conquer England?", k=3)
    finally:
        pipeline.index.close()

    assert answer.sources[0].document_id == "history/normans.md"
    assert "[1]" in answer.answer
    assert "The Normans conquered England in 1066. [1]" in answer.answer
    assert answer.citations[0] == answer.sources[0].id
