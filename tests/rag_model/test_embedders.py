"""Tests for the embedders: the deterministic hash fake, weight verification, and real MiniLM."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from rag_model.config import EmbeddingConfig
from rag_model.embedders import (
    CachingEmbedder,
    HashEmbedder,
    PrecomputedEmbedder,
    SentenceTransformerEmbedder,
    copy_embedder_files,
    make_embedder,
)
from rag_model.errors import EmbedderError
from rag_model.minilm import (
    MINILM_FILES,
    MINILM_WEIGHTS_FILE,
    MINILM_WEIGHTS_SHA256,
    bundled_minilm_dir,
    verify_minilm_weights,
)

TEXTS = [
    "Brunel built the bridge in 1864.",
    "Oxygen is a chemical element.",
    "Iron rusts in water.",
    "The violin has four strings.",
    "William conquered England in 1066.",
]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_hash_embedder_is_deterministic_across_instances() -> None:
    first = HashEmbedder().embed(TEXTS)
    second = HashEmbedder().embed(TEXTS)

    assert first.shape == (len(TEXTS), 384)
    assert first.dtype == np.float32
    np.testing.assert_array_equal(first, second)


def test_hash_embedder_vectors_are_unit_norm() -> None:
    vectors = HashEmbedder(dimension=64).embed(TEXTS)

    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)


def test_hash_embedder_gives_a_zero_vector_for_a_text_without_words() -> None:
    vector = HashEmbedder(dimension=16).embed(["?! ..."])

    np.testing.assert_array_equal(vector, np.zeros((1, 16), dtype=np.float32))


def test_hash_embedder_ignores_case_and_punctuation() -> None:
    vectors = HashEmbedder().embed(["Who built the Bridge?", "who built the bridge"])

    np.testing.assert_array_equal(vectors[0], vectors[1])


def test_hash_embedder_texts_sharing_words_are_more_similar() -> None:
    question, related, unrelated = HashEmbedder().embed(
        ["who built the bridge", "Brunel built the bridge in 1864", "oxygen is a gas element"]
    )

    assert _cosine(question, related) > _cosine(question, unrelated) + 0.3


def test_embed_in_small_batches_equals_one_batch() -> None:
    embedder = HashEmbedder()

    np.testing.assert_array_equal(
        embedder.embed(TEXTS, batch_size=2), embedder.embed(TEXTS, batch_size=100)
    )


def test_embed_of_nothing_has_zero_rows() -> None:
    vectors = HashEmbedder(dimension=16).embed([])

    assert vectors.shape == (0, 16)
    assert vectors.dtype == np.float32


@pytest.mark.parametrize("dimension", [0, -3])
def test_hash_embedder_rejects_a_non_positive_dimension(dimension: int) -> None:
    with pytest.raises(EmbedderError, match=f"^dimension must be > 0, got {dimension}$"):
        HashEmbedder(dimension=dimension)


def test_make_embedder_for_the_hash_model(tmp_path: Path) -> None:
    config = EmbeddingConfig(model="hash-embedder")

    embedder = make_embedder(config)

    assert isinstance(embedder, HashEmbedder)
    assert embedder.model_id == "hash-embedder"
    assert copy_embedder_files(config, tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_verify_minilm_weights_refuses_a_folder_without_weights(tmp_path: Path) -> None:
    with pytest.raises(
        EmbedderError,
        match=re.escape(f"no model.safetensors in {tmp_path}: the embedder files are missing"),
    ):
        verify_minilm_weights(tmp_path)


def test_verify_minilm_weights_refuses_other_weights(tmp_path: Path) -> None:
    (tmp_path / MINILM_WEIGHTS_FILE).write_bytes(b"not the real weights")

    with pytest.raises(
        EmbedderError,
        match=re.escape(f"expected {MINILM_WEIGHTS_SHA256}: the weights were altered"),
    ):
        verify_minilm_weights(tmp_path)


def test_sentence_transformer_embedder_verifies_weights_before_loading(tmp_path: Path) -> None:
    (tmp_path / MINILM_WEIGHTS_FILE).write_bytes(b"not the real weights")
    embedder = SentenceTransformerEmbedder(tmp_path)

    with pytest.raises(EmbedderError, match="the weights were altered or are a different model"):
        embedder.embed(["hello"])


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder(bundled_minilm_dir())
    embedder.warm_up()
    return embedder


@pytest.mark.integration
def test_minilm_embeds_a_sentence_as_a_unit_vector(minilm: SentenceTransformerEmbedder) -> None:
    vectors = minilm.embed(["Brunel built the bridge in 1864."])

    assert vectors.shape == (1, 384)
    assert vectors.dtype == np.float32
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.integration
def test_minilm_ranks_a_paraphrase_above_an_unrelated_sentence(
    minilm: SentenceTransformerEmbedder,
) -> None:
    question, paraphrase, unrelated = minilm.embed(
        ["Who constructed the bridge?", "Brunel built the bridge.", "Oxygen is a gas."]
    )

    assert float(question @ paraphrase) > float(question @ unrelated)


@pytest.mark.integration
def test_verify_minilm_weights_refuses_a_copy_with_one_byte_changed(tmp_path: Path) -> None:
    copy = copy_embedder_files(EmbeddingConfig(backend="torch"), tmp_path / "embedder")
    assert copy == tmp_path / "embedder"
    assert sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file()) == sorted(
        MINILM_FILES
    )
    verify_minilm_weights(copy)  # the untouched copy is accepted

    weights = copy / MINILM_WEIGHTS_FILE
    with weights.open("r+b") as handle:
        handle.seek(weights.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0x01]))

    with pytest.raises(
        EmbedderError,
        match=re.escape(f"{weights} has sha256 ")
        + r"[0-9a-f]{64}"
        + re.escape(f", expected {MINILM_WEIGHTS_SHA256}: the weights were altered"),
    ):
        verify_minilm_weights(copy)


class CountingEmbedder(HashEmbedder):
    """A HashEmbedder that records every batch it is asked to embed."""

    def __init__(self) -> None:
        super().__init__(dimension=16)
        self.batches: list[list[str]] = []

    def embed_batch(self, texts):  # type: ignore[no-untyped-def]
        self.batches.append(list(texts))
        return super().embed_batch(texts)


def test_caching_embedder_embeds_each_text_once_and_returns_the_same_vectors() -> None:
    inner = CountingEmbedder()
    cached = CachingEmbedder(inner)
    first = cached.embed(["a b", "c d", "a b"])
    second = cached.embed(["c d", "e f"])
    assert inner.batches == [["a b", "c d"], ["e f"]]
    np.testing.assert_array_equal(first, HashEmbedder(16).embed(["a b", "c d", "a b"]))
    np.testing.assert_array_equal(second[0], first[1])
    assert (cached.hits, cached.misses) == (2, 3)
    assert (cached.model_id, cached.dimension) == (inner.model_id, 16)


def test_caching_embedder_evicts_the_least_recently_used_text() -> None:
    inner = CountingEmbedder()
    cached = CachingEmbedder(inner, max_entries=2)
    cached.embed(["a"])
    cached.embed(["b"])
    cached.embed(["a"])  # a is now the most recently used
    cached.embed(["c"])  # evicts b
    cached.embed(["a", "b"])
    assert inner.batches == [["a"], ["b"], ["c"], ["b"]]


def test_caching_embedder_rejects_a_non_positive_size() -> None:
    with pytest.raises(EmbedderError, match="max_entries must be > 0, got 0"):
        CachingEmbedder(HashEmbedder(), max_entries=0)


def test_precomputed_embedder_returns_the_given_vectors_and_names_a_missing_text() -> None:
    vectors = HashEmbedder(dimension=8).embed(["first text", "second text"])
    embedder = PrecomputedEmbedder("hash-embedder", dict(zip(["a", "b"], vectors, strict=True)))

    assert embedder.dimension == 8
    np.testing.assert_array_equal(embedder.embed(["b", "a", "b"]), vectors[[1, 0, 1]])
    with pytest.raises(
        EmbedderError, match=r"1 text\(s\) were not embedded beforehand, e.g. 'c'; embed every"
    ):
        embedder.embed(["a", "c"])
