"""Build a snapshot from a data path: ingest -> chunk -> embed -> Chroma index + manifest.

``build_snapshot`` does every step in this process; ``rag_spark.indexing`` chunks and embeds on
Spark instead. Both hand their chunks and vectors to ``write_snapshot``, the one writer, so the
snapshot format and manifest are the same whichever engine built them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag_model.chunking import chunk_documents
from rag_model.config import RagConfig
from rag_model.documents import Chunk, corpus_fingerprint
from rag_model.embedders import Embedder, make_embedder
from rag_model.errors import IngestionError
from rag_model.index import build_index, check_snapshot_target
from rag_model.ingestion import Corpus, load_documents


@dataclass(frozen=True)
class BuildResult:
    """What a build produced and how long each step took."""

    snapshot_dir: Path
    manifest: dict[str, Any]
    document_count: int
    chunk_count: int
    skipped: list[tuple[str, str]]
    seconds: dict[str, float]
    ingestion_report: dict[str, Any]

    @property
    def index_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.snapshot_dir.rglob("*") if p.is_file())


def build_snapshot(
    config: RagConfig,
    data_path: str | Path,
    snapshot_dir: str | Path,
    embedder: Embedder | None = None,
    progress: bool = False,
    corpus: Corpus | None = None,
) -> BuildResult:
    """Build the Chroma snapshot of the documents under ``data_path`` into ``snapshot_dir``.

    ``corpus`` is the documents of ``data_path`` when the caller has read them already (to
    check them against an eval set before embedding).

    Raises:
        ConfigError: ``snapshot_dir`` is not empty.
        IngestionError: unreadable files, duplicate ids or an empty corpus.
    """
    check_snapshot_target(Path(snapshot_dir))  # before minutes of embedding, not after
    started = time.perf_counter()
    corpus = corpus or load_documents(data_path)
    embedder = embedder or make_embedder(config.embedding)
    chunks = chunk_documents(corpus.documents, config.chunking, embedder.token_counter())
    check_chunks(chunks, data_path)
    chunked = time.perf_counter()
    vectors = embedder.embed(
        [chunk.text for chunk in chunks], batch_size=config.embedding.batch_size, progress=progress
    )
    embedded = time.perf_counter()
    return write_snapshot(
        config,
        corpus,
        chunks,
        vectors,
        snapshot_dir,
        embedder,
        {"ingest_chunk_seconds": chunked - started, "embed_seconds": embedded - chunked},
    )


def check_chunks(chunks: Sequence[Chunk], data_path: str | Path) -> None:
    """Refuse a corpus that produced no chunks (before any embedding)."""
    if not chunks:
        raise IngestionError(f"the documents under {data_path} produced no chunks")


def write_snapshot(
    config: RagConfig,
    corpus: Corpus,
    chunks: Sequence[Chunk],
    vectors: np.ndarray,
    snapshot_dir: str | Path,
    embedder: Embedder,
    seconds: Mapping[str, float],
) -> BuildResult:
    """Write embedded chunks as a snapshot (Chroma, BM25, sentence vectors, manifest).

    Args:
        config: the build's config (index settings; whether sentence vectors are wanted).
        corpus: the documents the chunks came from (fingerprint, counts, ingestion report).
        chunks: the chunks, in document order.
        vectors: one embedding per chunk, in the same order.
        snapshot_dir: a new or empty folder.
        embedder: the embedder that made ``vectors`` (its id goes into the manifest); it also
            embeds the chunks' sentences when the config wants sentence vectors (a
            ``PrecomputedEmbedder`` when they were embedded elsewhere).
        seconds: the timings of the steps before this one; ``index_seconds`` and
            ``build_seconds`` (their sum plus this step) are added.
    """
    started = time.perf_counter()
    manifest = build_index(
        chunks,
        vectors,
        snapshot_dir,
        config.index,
        embedder_id=embedder.model_id,
        corpus_fingerprint=corpus_fingerprint(corpus.documents),
        sentence_embedder=embedder if wants_sentence_vectors(config) else None,
        batch_size=config.embedding.batch_size,
    )
    index_seconds = time.perf_counter() - started
    return BuildResult(
        snapshot_dir=Path(snapshot_dir),
        manifest=manifest,
        document_count=len(corpus.documents),
        chunk_count=len(chunks),
        skipped=corpus.skipped,
        ingestion_report=corpus.report(),
        seconds={
            **seconds,
            "index_seconds": index_seconds,
            "build_seconds": sum(seconds.values()) + index_seconds,
        },
    )


def wants_sentence_vectors(config: RagConfig) -> bool:
    """Whether the snapshot carries sentence vectors.

    Extractive answers, sentence re-scoring and sentence units (parent-document retrieval) use
    them.
    """
    retrieval = config.retrieval
    uses = (
        config.generation.generator == "extractive"
        or retrieval.sentence_weight > 0
        or retrieval.search_unit == "sentence"
    )
    return config.index.sentence_vectors and uses
