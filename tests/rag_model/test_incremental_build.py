"""Incremental builds: the persistent embedding cache, the documents table and its diff."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag_model.build import BuildResult, build_snapshot
from rag_model.config import RagConfig
from rag_model.corpus_table import DOCUMENTS_FILE, compare_tables, read_documents_table
from rag_model.embedders import HashEmbedder
from rag_model.embedding_cache import (
    PersistentEmbeddingCache,
    cache_path_option,
    embedder_identity,
)
from rag_model.errors import ConfigError
from rag_model.index import ChromaIndex
from rag_model.manifest import verify_manifest
from rag_model.sentences import SENTENCES_DIR, VECTORS_FILE, split_sentences

# extractive: the snapshot carries sentence vectors, so sentences go through the cache too
CONFIG = RagConfig.from_dict(
    {
        "embedding": {"model": "hash-embedder"},
        "chunking": {"chunk_size": 120, "chunk_overlap": 0},
    }
)
LONG = " ".join(f"Sentence {n} of the {{topic}} document talks about {{topic}}." for n in range(9))
TOPICS = ["oxygen", "iron", "bridges", "normans", "violins"]


class CountingEmbedder(HashEmbedder):
    """A hash embedder that records every text it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.embedded: list[str] = []

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded += texts
        return super().embed_batch(texts)


def write_corpus(path: Path, texts: dict[str, str]) -> Path:
    lines = [json.dumps({"id": key, "text": text}) for key, text in texts.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def corpus_texts() -> dict[str, str]:
    return {topic: LONG.format(topic=topic) for topic in TOPICS}


def build(tmp: Path, name: str, texts: dict[str, str], cache: Path | None) -> tuple[Any, Any]:
    inner = CountingEmbedder()
    embedder = (
        PersistentEmbeddingCache(inner, cache, embedder_identity(CONFIG.embedding))
        if cache
        else inner
    )
    (tmp / f"{name}-data").mkdir()
    # one file name for every corpus: a chunk's metadata names its source file
    data = write_corpus(tmp / f"{name}-data" / "corpus.jsonl", texts)
    return build_snapshot(CONFIG, data, tmp / name, embedder=embedder), inner


def contents(result: BuildResult) -> dict[str, Any]:
    """Ids, texts, metadata and vectors of a snapshot's Chroma collection, sorted by id."""
    index = ChromaIndex.open(result.snapshot_dir)
    try:
        found = index.chroma_collection().get(include=["embeddings", "documents", "metadatas"])
    finally:
        index.close()
    order = np.argsort(found["ids"])
    return {
        "ids": [found["ids"][i] for i in order],
        "texts": [found["documents"][i] for i in order],
        "metadatas": [found["metadatas"][i] for i in order],
        "vectors": np.asarray(found["embeddings"])[order],
    }


def test_a_rebuild_after_an_edit_embeds_only_that_documents_new_chunks(tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite3"
    cold, cold_inner = build(tmp_path, "cold", corpus_texts(), cache)
    assert cold.chunk_count > len(TOPICS)  # several chunks per document
    assert cold.counts["build_chunks_embedded"] == cold.chunk_count
    assert cold.counts["build_chunks_reused"] == 0
    assert cold.counts["build_sentences_total"] > cold.chunk_count

    edited = corpus_texts()
    edited["iron"] = "Iron was smelted first in Anatolia. " + edited["iron"]
    rebuilt, inner = build(tmp_path, "rebuilt", edited, cache)

    iron = {c for c in contents(rebuilt)["texts"] if "iron" in c.lower()}
    new_chunks = set(contents(rebuilt)["texts"]) - set(contents(cold)["texts"])
    assert new_chunks and new_chunks <= iron  # only the edited document's chunks changed
    # what the cache holds: every chunk and sentence the cold build embedded (a new chunk can
    # equal an old sentence: then it is reused too)
    seen = set(cold_inner.embedded)
    new_sentences = {x for c in new_chunks for x in split_sentences(c)} - seen
    fresh_chunks = new_chunks - seen
    # each new text embedded exactly once (a chunk that is also a sentence: once), no other
    assert sorted(inner.embedded) == sorted(fresh_chunks | new_sentences)
    assert rebuilt.counts["build_chunks_total"] == rebuilt.chunk_count
    assert rebuilt.counts["build_chunks_embedded"] == len(fresh_chunks)
    assert rebuilt.counts["build_chunks_reused"] == rebuilt.chunk_count - len(fresh_chunks)
    assert rebuilt.counts["build_sentences_embedded"] == len(new_sentences - fresh_chunks)
    assert rebuilt.counts["build_sentences_reused"] == (
        rebuilt.counts["build_sentences_total"] - len(new_sentences - fresh_chunks)
    )

    # the same snapshot as a cold build of the new corpus without any cache
    fresh, _ = build(tmp_path, "fresh", edited, None)
    assert fresh.counts["build_chunks_reused"] == 0
    ours, theirs = contents(rebuilt), contents(fresh)
    for field in ("ids", "texts", "metadatas"):
        assert ours[field] == theirs[field], field
    np.testing.assert_allclose(ours["vectors"], theirs["vectors"], atol=1e-6)
    np.testing.assert_allclose(
        np.load(rebuilt.snapshot_dir / SENTENCES_DIR / VECTORS_FILE),
        np.load(fresh.snapshot_dir / SENTENCES_DIR / VECTORS_FILE),
        atol=1e-6,
    )
    assert rebuilt.manifest["corpus_fingerprint"] == fresh.manifest["corpus_fingerprint"]
    for name in (DOCUMENTS_FILE, "bm25/params.index.json"):
        if name in fresh.manifest["files"]:
            assert rebuilt.manifest["files"][name] == fresh.manifest["files"][name], name
    verify_manifest(rebuilt.snapshot_dir)


def test_the_documents_table_tells_added_removed_and_changed_documents(tmp_path: Path) -> None:
    before, _ = build(tmp_path, "before", corpus_texts(), None)
    texts = corpus_texts()
    texts["iron"] += " Steel is mostly iron."
    del texts["violins"]
    texts["tin"] = LONG.format(topic="tin")
    after, _ = build(tmp_path, "after", texts, None)

    old = read_documents_table(before.snapshot_dir)
    new = read_documents_table(after.snapshot_dir)
    assert old is not None and new is not None
    assert sorted(old) == sorted(TOPICS)
    assert [len(entry["sha256"]) for entry in old.values()] == [64] * len(TOPICS)
    assert sum(len(entry["chunks"]) for entry in old.values()) == before.chunk_count
    changes = compare_tables(old, new)
    assert (changes.added, changes.removed, changes.changed) == (["tin"], ["violins"], ["iron"])
    assert changes.unchanged == 3
    assert (changes.chunks_before, changes.chunks_after) == (before.chunk_count, after.chunk_count)
    assert changes.chunks_removed == len(old["violins"]["chunks"]) + len(
        set(old["iron"]["chunks"]) - set(new["iron"]["chunks"])
    )


def test_a_snapshot_without_a_documents_table_still_verifies_and_reads_as_none(
    tmp_path: Path,
) -> None:
    built, _ = build(tmp_path, "s", corpus_texts(), None)
    legacy = tmp_path / "legacy"
    shutil.copytree(built.snapshot_dir, legacy)
    (legacy / DOCUMENTS_FILE).unlink()
    manifest = json.loads((legacy / "manifest.json").read_text())
    manifest["format_version"] = "1.1"
    del manifest["files"][DOCUMENTS_FILE], manifest["sizes"][DOCUMENTS_FILE]
    from rag_model.manifest import _write

    _write(legacy, manifest)
    assert read_documents_table(legacy) is None
    ChromaIndex.open(legacy)  # verifies


def test_a_corrupt_cache_entry_is_detected_and_embedded_again(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    texts = ["alpha beta", "gamma delta"]
    first = PersistentEmbeddingCache(CountingEmbedder(), path, "id")
    expected = first.embed(texts)
    first.close()
    with sqlite3.connect(path) as db:  # flip bytes of one stored vector
        (blob,) = db.execute("SELECT vector FROM embeddings LIMIT 1").fetchone()
        damaged = bytes([blob[0] ^ 0xFF]) + blob[1:]
        db.execute("UPDATE embeddings SET vector = ? WHERE vector = ?", (damaged, blob))

    inner = CountingEmbedder()
    second = PersistentEmbeddingCache(inner, path, "id")
    np.testing.assert_array_equal(second.embed(texts), expected)  # never the damaged vector
    assert len(inner.embedded) == 1 and second.corrupt == 1
    assert (second.hits, second.misses) == (1, 1)
    second.close()

    third_inner = CountingEmbedder()
    third = PersistentEmbeddingCache(third_inner, path, "id")
    np.testing.assert_array_equal(third.embed(texts), expected)  # repaired in place
    assert third_inner.embedded == [] and third.corrupt == 0


def _fill(path: str, start: int, queue: Any) -> None:
    """A second process: embed 600 overlapping texts in small calls (many write transactions)."""
    cache = PersistentEmbeddingCache(HashEmbedder(dimension=16), path, "shared")
    for offset in range(start, start + 600, 20):
        cache.embed([f"text number {n}" for n in range(offset, offset + 20)])
    cache.close()
    queue.put((cache.hits, cache.misses))


@pytest.mark.integration  # two Python processes (spawned: a few seconds of imports)
def test_two_builds_share_one_cache_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "cache.sqlite3")
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_fill, args=(path, start, queue)) for start in (0, 300)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0]
    results = [queue.get(timeout=5) for _ in workers]
    assert sum(hits + misses for hits, misses in results) == 1200

    texts = [f"text number {n}" for n in range(900)]
    inner = CountingEmbedder()
    reader = PersistentEmbeddingCache(inner, path, "shared")
    inner.dimension = reader.dimension = 16
    np.testing.assert_array_equal(reader.embed(texts), HashEmbedder(16).embed(texts))
    assert inner.embedded == [] and reader.corrupt == 0  # every text stored whole, once


def test_the_cache_option_reads_none_and_refuses_a_folder(tmp_path: Path) -> None:
    assert cache_path_option("none") is None
    assert cache_path_option("NONE") is None
    assert cache_path_option(str(tmp_path / "c.sqlite3")) == tmp_path / "c.sqlite3"
    with pytest.raises(ConfigError, match="is a folder; give a file path"):
        cache_path_option(str(tmp_path))
