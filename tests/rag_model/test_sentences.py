"""Sentence vectors embedded at build time give the same extractive answers, cheaper."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag_model.build import build_snapshot
from rag_model.config import RagConfig
from rag_model.embedders import CachingEmbedder
from rag_model.errors import IntegrityError
from rag_model.generators import ExtractiveGenerator
from rag_model.pipeline import RagPipeline
from rag_model.sentences import CHUNKS_FILE, SENTENCES_DIR, VECTORS_FILE, SentenceVectors
from tests.conftest import SAMPLE_CORPUS

EXTRACTIVE = {"embedding": {"model": "hash-embedder"}, "generation": {"generator": "extractive"}}
QUESTIONS = ["What is oxygen used for?", "Who were the Normans?", "When did the plague spread?"]


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sentences") / "snapshot"
    build_snapshot(RagConfig.from_dict(EXTRACTIVE), SAMPLE_CORPUS, folder)
    return folder


def test_the_build_stores_every_chunks_sentences(snapshot: Path) -> None:
    store = SentenceVectors.open(snapshot / SENTENCES_DIR)
    table = json.loads((snapshot / SENTENCES_DIR / CHUNKS_FILE).read_text())
    manifest = json.loads((snapshot / "manifest.json").read_text())

    assert store is not None and len(store.spans) == len(table) > 100
    assert store.vectors.shape == (sum(count for _, count in table), 384)
    assert {f"{SENTENCES_DIR}/{VECTORS_FILE}", f"{SENTENCES_DIR}/{CHUNKS_FILE}"} <= set(
        manifest["files"]
    )


def test_answers_with_stored_vectors_equal_answers_embedded_at_query_time(
    snapshot: Path,
) -> None:
    config = RagConfig.from_dict(EXTRACTIVE)
    stored = RagPipeline.from_snapshot(config, snapshot)
    assert isinstance(stored.generator, ExtractiveGenerator)
    assert stored.generator.sentence_vectors is not None
    plain = RagPipeline.from_snapshot(config, snapshot)
    plain.generator = ExtractiveGenerator(plain.embedder, config.generation.max_sentences)

    for question in QUESTIONS:
        with_store, without = stored.answer(question), plain.answer(question)
        assert with_store.answer == without.answer
        assert with_store.citations == without.citations
        assert with_store.confidence == pytest.approx(without.confidence, abs=1e-5)
    assert isinstance(stored.embedder, CachingEmbedder)
    assert stored.embedder.misses == len(QUESTIONS)  # only the questions were embedded


def test_a_chunk_split_differently_is_embedded_at_query_time() -> None:
    store = SentenceVectors(np.zeros((1, 8), dtype=np.float32), {"c1": (0, 1)})

    assert store.for_chunk("c1", expected=1) is not None
    assert store.for_chunk("c1", expected=2) is None  # fall back, never misalign
    assert store.for_chunk("unknown", expected=1) is None


def test_a_snapshot_without_sentence_vectors_still_answers(tmp_path: Path) -> None:
    config = RagConfig.from_dict({**EXTRACTIVE, "index": {"sentence_vectors": False}})
    build_snapshot(config, SAMPLE_CORPUS, tmp_path / "snapshot")
    pipeline = RagPipeline.from_snapshot(config, tmp_path / "snapshot")

    assert not (tmp_path / "snapshot" / SENTENCES_DIR).exists()
    assert pipeline.index.sentence_vectors() is None
    assert pipeline.answer(QUESTIONS[0]).citations


def test_a_table_that_disagrees_with_the_vectors_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / VECTORS_FILE, np.zeros((3, 4), dtype=np.float32))
    (tmp_path / CHUNKS_FILE).write_text(json.dumps([["a", 1], ["b", 1]]))

    with pytest.raises(IntegrityError, match="lists 2 sentences but vectors.npy holds 3"):
        SentenceVectors.open(tmp_path)


@pytest.mark.parametrize("rows", [0, 1, 7, 300])
def test_slices_saved_as_one_npy_are_the_bytes_np_save_writes(tmp_path: Path, rows: int) -> None:
    from rag_model.sentences import save_rows

    matrix = np.random.default_rng(rows).standard_normal((rows, 384)).astype(np.float32)
    np.save(tmp_path / "whole.npy", matrix)

    save_rows(tmp_path / "sliced.npy", rows, 384, (matrix[i : i + 4] for i in range(0, rows, 4)))

    assert (tmp_path / "sliced.npy").read_bytes() == (tmp_path / "whole.npy").read_bytes()


def test_slices_that_do_not_add_up_are_refused(tmp_path: Path) -> None:
    from rag_model.sentences import save_rows

    with pytest.raises(ValueError, match=r"^rows\.npy: 4 rows written, 5 expected$"):
        save_rows(tmp_path / "rows.npy", 5, 384, [np.zeros((4, 384), np.float32)])


def test_sentences_embedded_in_slices_give_the_same_files(tmp_path: Path) -> None:
    from rag_model.embedders import HashEmbedder
    from rag_model.sentences import build_sentence_vectors
    from tests.rag_model.test_index import CHUNKS

    class Calls(HashEmbedder):
        sizes: list[int] = []

        def embed(self, texts, batch_size=32, progress=False):  # noqa: ANN001, ANN202
            self.sizes.append(len(texts))
            return super().embed(texts, batch_size, progress)

    whole, sliced = tmp_path / "whole", tmp_path / "sliced"
    count = build_sentence_vectors(CHUNKS, HashEmbedder(), whole)

    assert build_sentence_vectors(CHUNKS, Calls(), sliced, slice_rows=3) == count
    assert Calls.sizes == [3] * (count // 3) + ([count % 3] if count % 3 else [])
    for name in (VECTORS_FILE, CHUNKS_FILE):
        assert (sliced / name).read_bytes() == (whole / name).read_bytes(), name
