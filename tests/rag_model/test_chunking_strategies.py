"""Token and sentence chunking sized in the embedder's tokens; deterministic ids."""

from __future__ import annotations

import pytest

from rag_model.chunking import chunk_documents
from rag_model.config import ChunkingConfig, RagConfig
from rag_model.documents import Document
from rag_model.embedders import HashEmbedder, SentenceTransformerEmbedder
from rag_model.errors import ConfigError
from rag_model.minilm import bundled_minilm_dir

TEXT = " ".join(
    f"Sentence number {i} talks about the Norman conquest of England in 1066." for i in range(40)
)
DOCUMENT = Document("doc", TEXT, {"title": "Normans"})


@pytest.mark.parametrize("strategy", ["token", "sentence"])
def test_token_sized_strategies_respect_the_size_and_are_deterministic(strategy: str) -> None:
    counter = HashEmbedder().token_counter()
    config = ChunkingConfig(strategy=strategy, chunk_size=40, chunk_overlap=5)
    first = chunk_documents([DOCUMENT], config, counter)
    second = chunk_documents([DOCUMENT], config, counter)
    assert [c.id for c in first] == [c.id for c in second]
    assert len(first) > 5
    assert all(counter(chunk.text) <= 40 for chunk in first)
    for chunk in first:
        start = chunk.metadata["start_index"]
        assert TEXT[start : start + len(chunk.text)] == chunk.text


def test_sentence_strategy_ends_chunks_at_sentence_boundaries() -> None:
    config = ChunkingConfig(strategy="sentence", chunk_size=40, chunk_overlap=0)
    chunks = chunk_documents([DOCUMENT], config, HashEmbedder().token_counter())
    assert all(chunk.text.endswith("1066.") for chunk in chunks)


def test_token_strategies_need_a_counter() -> None:
    with pytest.raises(ValueError, match="the 'token' strategy needs the embedder's token counter"):
        chunk_documents(
            [DOCUMENT], ChunkingConfig(strategy="token", chunk_size=40, chunk_overlap=5)
        )


def test_token_chunks_must_fit_the_minilm_window() -> None:
    with pytest.raises(ConfigError, match="chunk_size 800 tokens is over .*256-token window"):
        RagConfig.from_dict({"chunking": {"strategy": "token"}})
    RagConfig.from_dict({"chunking": {"strategy": "token", "chunk_size": 256, "chunk_overlap": 32}})


@pytest.mark.integration
def test_minilm_token_counter_uses_its_word_pieces() -> None:
    counter = SentenceTransformerEmbedder(bundled_minilm_dir()).token_counter()
    assert counter("hello world") == 2
    assert counter("Tokenization") > 1  # split into word pieces
    config = ChunkingConfig(strategy="token", chunk_size=64, chunk_overlap=8)
    chunks = chunk_documents([DOCUMENT], config, counter)
    assert all(counter(chunk.text) <= 64 for chunk in chunks)
