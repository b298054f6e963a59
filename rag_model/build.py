"""Build a snapshot from a data path: ingest -> chunk -> embed -> Chroma index + manifest."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag_model.chunking import chunk_documents
from rag_model.config import RagConfig
from rag_model.documents import corpus_fingerprint
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
    if not chunks:
        raise IngestionError(f"the documents under {data_path} produced no chunks")
    chunked = time.perf_counter()
    vectors = embedder.embed(
        [chunk.text for chunk in chunks], batch_size=config.embedding.batch_size, progress=progress
    )
    embedded = time.perf_counter()
    manifest = build_index(
        chunks,
        vectors,
        snapshot_dir,
        config.index,
        embedder_id=embedder.model_id,
        corpus_fingerprint=corpus_fingerprint(corpus.documents),
        sentence_embedder=embedder if _wants_sentence_vectors(config) else None,
        batch_size=config.embedding.batch_size,
    )
    indexed = time.perf_counter()
    return BuildResult(
        snapshot_dir=Path(snapshot_dir),
        manifest=manifest,
        document_count=len(corpus.documents),
        chunk_count=len(chunks),
        skipped=corpus.skipped,
        ingestion_report=corpus.report(),
        seconds={
            "ingest_chunk_seconds": chunked - started,
            "embed_seconds": embedded - chunked,
            "index_seconds": indexed - embedded,
            "build_seconds": indexed - started,
        },
    )


def _wants_sentence_vectors(config: RagConfig) -> bool:
    return config.index.sentence_vectors and config.generation.generator == "extractive"
