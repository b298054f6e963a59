"""Tests for build_snapshot: ingest -> chunk -> embed -> verified Chroma snapshot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag_model.build import build_snapshot
from rag_model.config import RagConfig
from rag_model.documents import corpus_fingerprint
from rag_model.errors import IngestionError
from rag_model.index import ChromaIndex
from rag_model.ingestion import load_documents
from rag_model.manifest import verify_manifest


def test_build_snapshot_returns_counts_and_a_verified_manifest(
    hash_config: RagConfig, corpus_dir: Path, tmp_path: Path
) -> None:
    (corpus_dir / "photo.png").write_bytes(b"\x89PNG")

    result = build_snapshot(hash_config, corpus_dir, tmp_path / "snapshot")

    assert result.snapshot_dir == tmp_path / "snapshot"
    assert result.document_count == 5
    assert result.chunk_count == 5  # each document is shorter than chunk_size
    assert result.manifest["chunk_count"] == result.chunk_count
    assert result.manifest["embedder"] == "hash-embedder"
    assert result.manifest["embedding_dimension"] == 384
    assert result.manifest["corpus_fingerprint"] == corpus_fingerprint(
        load_documents(corpus_dir).documents
    )
    assert result.skipped == [("photo.png", "unsupported type .png")]
    assert set(result.seconds) == {
        "ingest_chunk_seconds",
        "embed_seconds",
        "index_seconds",
        "build_seconds",
    }
    assert result.index_bytes == sum(
        p.stat().st_size for p in result.snapshot_dir.rglob("*") if p.is_file()
    )
    assert verify_manifest(result.snapshot_dir) == result.manifest


def test_smaller_chunks_give_more_chunks(corpus_dir: Path, tmp_path: Path) -> None:
    config = RagConfig.from_dict(
        {
            "embedding": {"model": "hash-embedder"},
            "chunking": {"chunk_size": 40, "chunk_overlap": 5},
        }
    )

    result = build_snapshot(config, corpus_dir, tmp_path / "snapshot")

    assert result.chunk_count > result.document_count
    assert result.manifest["chunk_count"] == result.chunk_count
    index = ChromaIndex.open(result.snapshot_dir)
    assert index.chunk_count == result.chunk_count


def test_build_snapshot_of_an_empty_folder_raises(hash_config: RagConfig, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()

    with pytest.raises(IngestionError, match=re.escape(f"no documents found in {data}")):
        build_snapshot(hash_config, data, tmp_path / "snapshot")
    assert not (tmp_path / "snapshot").exists()


def test_build_snapshot_into_a_non_empty_folder_raises(
    hash_config: RagConfig, corpus_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "snapshot"
    out.mkdir()
    (out / "old.txt").write_text("x")

    with pytest.raises(ValueError, match=re.escape(f"snapshot folder {out} is not empty")):
        build_snapshot(hash_config, corpus_dir, out)
