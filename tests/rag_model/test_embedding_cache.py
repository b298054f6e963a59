"""The persistent embedding cache: same vectors, shared across instances, keyed by identity."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag_model.config import EmbeddingConfig
from rag_model.embedders import HashEmbedder
from rag_model.embedding_cache import PersistentEmbeddingCache, embedder_identity


class CountingEmbedder(HashEmbedder):
    """A hash embedder that counts what it embeds and whether it was loaded."""

    def __init__(self) -> None:
        super().__init__(dimension=16)
        self.embedded: list[str] = []
        self.warmed = False

    def warm_up(self) -> None:
        self.warmed = True

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded += texts
        return super().embed_batch(texts)


def test_cached_vectors_equal_fresh_ones_and_survive_a_new_instance(tmp_path: Path) -> None:
    texts = ["alpha beta", "gamma", "alpha beta", "delta epsilon"]
    first_inner = CountingEmbedder()
    first = PersistentEmbeddingCache(first_inner, tmp_path / "c.sqlite3", "id-1")
    vectors = first.embed(texts, batch_size=2)
    np.testing.assert_array_equal(vectors, HashEmbedder(16).embed(texts))
    assert sorted(first_inner.embedded) == ["alpha beta", "delta epsilon", "gamma"]
    assert (first.hits, first.misses) == (1, 3)  # the repeated text is embedded once
    first.close()

    second_inner = CountingEmbedder()
    second = PersistentEmbeddingCache(second_inner, tmp_path / "c.sqlite3", "id-1")
    np.testing.assert_array_equal(second.embed(texts), vectors)
    assert second_inner.embedded == [] and not second_inner.warmed  # never loaded
    assert (second.hits, second.misses) == (4, 0)


def test_another_embedder_identity_never_reads_these_vectors(tmp_path: Path) -> None:
    PersistentEmbeddingCache(CountingEmbedder(), tmp_path / "c.sqlite3", "id-1").embed(["x"])
    other_inner = CountingEmbedder()
    PersistentEmbeddingCache(other_inner, tmp_path / "c.sqlite3", "id-2").embed(["x"])
    assert other_inner.embedded == ["x"]


def test_identity_covers_model_and_settings_but_not_batch_size() -> None:
    base = EmbeddingConfig()
    assert embedder_identity(base) == embedder_identity(base.model_copy(update={"batch_size": 7}))
    assert embedder_identity(base) != embedder_identity(
        base.model_copy(update={"normalize": not base.normalize})
    )
    assert embedder_identity(base) != embedder_identity(
        base.model_copy(update={"model": "hash-embedder"})
    )


def test_empty_input(tmp_path: Path) -> None:
    cache = PersistentEmbeddingCache(CountingEmbedder(), tmp_path / "c.sqlite3", "id")
    assert cache.embed([]).shape == (0, 16)


def test_two_tallies_over_one_cache_count_their_own_calls_when_interleaved(
    tmp_path: Path,
) -> None:
    from rag_model.build import Tally

    cache = PersistentEmbeddingCache(HashEmbedder(), tmp_path / "c.sqlite3", "hash-v1")
    chunks, sentences = Tally(cache), Tally(cache)

    chunks.embed(["alpha", "beta"])
    sentences.embed(["alpha", "gamma", "delta"])  # "alpha" is reused
    chunks.embed(["beta", "epsilon"])  # "beta" is reused

    assert chunks.counts("c") == {"c_total": 4, "c_embedded": 3, "c_reused": 1}
    assert sentences.counts("s") == {"s_total": 3, "s_embedded": 2, "s_reused": 1}


def test_an_inner_embedder_can_ask_for_larger_blocks(tmp_path: Path) -> None:
    class Blocks(HashEmbedder):
        embed_block = 3  # what SparkEmbedder asks: one Spark job per block
        sizes: list[int] = []

        def embed(self, texts, batch_size=32, progress=False):  # noqa: ANN001, ANN202
            self.sizes.append(len(texts))
            return super().embed(texts, batch_size, progress)

    cache = PersistentEmbeddingCache(Blocks(), tmp_path / "c.sqlite3", "hash-v1")
    texts = [f"text {n}" for n in range(7)]

    np.testing.assert_allclose(cache.embed(texts), HashEmbedder().embed(texts), atol=1e-6)
    assert Blocks.sizes == [3, 3, 1]
