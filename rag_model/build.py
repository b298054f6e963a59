"""Build a snapshot from a data path: ingest -> chunk -> embed -> Chroma index + manifest.

``build_snapshot`` does every step in this process; ``rag_spark.indexing`` chunks and embeds on
Spark instead. Both hand their chunks and vectors to ``write_snapshot``, the one writer, so the
snapshot format and manifest are the same whichever engine built them.

Builds are incremental through the persistent embedding cache (``rag_model.embedding_cache``):
only texts no earlier build embedded with this embedder are embedded; the snapshot itself is
always written fresh. ``BuildResult.counts`` says how many chunks and sentences were embedded
and how many reused.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag_model.chunking import chunk_documents
from rag_model.config import RagConfig
from rag_model.corpus_table import documents_table
from rag_model.documents import Chunk, corpus_fingerprint
from rag_model.embedders import Embedder, make_embedder
from rag_model.embedding_cache import cached_embedder
from rag_model.errors import IngestionError
from rag_model.index import build_index, check_snapshot_target
from rag_model.ingestion import Corpus, load_documents
from rag_model.progress import log_line, timed_step


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
    # build_chunks_{total,embedded,reused}, build_sentences_{total,embedded,reused}
    counts: dict[str, int] = field(default_factory=dict)

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
    embedding_cache: str | Path | None = None,
) -> BuildResult:
    """Build the Chroma snapshot of the documents under ``data_path`` into ``snapshot_dir``.

    ``corpus`` is the documents of ``data_path`` when the caller has read them already (to
    check them against an eval set before embedding). ``embedding_cache``: the persistent
    cache file to read and fill (None: embed everything, keep nothing).

    Raises:
        ConfigError: ``snapshot_dir`` is not empty.
        IngestionError: unreadable files, duplicate ids or an empty corpus.
    """
    check_snapshot_target(Path(snapshot_dir))  # before minutes of embedding, not after
    started = time.perf_counter()
    if corpus is None:
        with timed_step("read documents", progress, str(data_path)):
            corpus = load_documents(data_path)
    owned = embedder is None  # a cache opened here is closed here
    embedder = embedder or cached_embedder(
        make_embedder(config.embedding), config.embedding, embedding_cache
    )
    try:
        return _build(config, data_path, snapshot_dir, embedder, progress, corpus, started)
    finally:
        if owned and hasattr(embedder, "close"):
            embedder.close()


def _build(
    config: RagConfig,
    data_path: str | Path,
    snapshot_dir: str | Path,
    embedder: Embedder,
    progress: bool,
    corpus: Corpus,
    started: float,
) -> BuildResult:
    with timed_step("chunking", progress, f"{len(corpus.documents)} documents"):
        chunks = chunk_documents(corpus.documents, config.chunking, embedder.token_counter())
    check_chunks(chunks, data_path)
    log_line(progress, f"chunks: {len(chunks)} from {len(corpus.documents)} documents")
    chunked = time.perf_counter()
    tally = Tally(embedder)
    vectors = tally.embed(
        [chunk.text for chunk in chunks], batch_size=config.embedding.batch_size, progress=progress
    )
    counts = tally.counts("build_chunks")
    log_line(
        progress,
        f"chunk vectors: {counts['build_chunks_embedded']} embedded, "
        f"{counts['build_chunks_reused']} reused from the embedding cache",
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
        counts=counts,
        progress=progress,
    )


class Tally(Embedder):
    """Counts the texts embedded through it, and how many the inner cache served (reused).

    Counted per call, so two tallies over one cached embedder (chunks, then sentences) stay
    apart even when their calls interleave (a streamed build embeds chunks while writing).
    """

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self.total = 0
        self.embedded = 0

    def token_counter(self):  # noqa: ANN201 - the inner embedder's
        return self.inner.token_counter()

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed(texts)

    def embed(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        misses = getattr(self.inner, "misses", None)  # None: no cache, every text is embedded
        vectors = self.inner.embed(texts, batch_size, progress)
        self.total += len(texts)
        self.embedded += len(texts) if misses is None else int(self.inner.misses) - misses
        return vectors

    def counts(self, prefix: str) -> dict[str, int]:
        """``{prefix}_total``, ``_embedded`` and ``_reused`` since this tally was made."""
        return {
            f"{prefix}_total": self.total,
            f"{prefix}_embedded": self.embedded,
            f"{prefix}_reused": self.total - self.embedded,
        }


def check_chunks(chunks: Sequence[Chunk], data_path: str | Path) -> None:
    """Refuse a corpus that produced no chunks (before any embedding)."""
    if not chunks:
        raise IngestionError(f"the documents under {data_path} produced no chunks")


def write_snapshot(
    config: RagConfig,
    corpus: Corpus,
    chunks: Sequence[Chunk],
    vectors: np.ndarray | Iterable[np.ndarray],
    snapshot_dir: str | Path,
    embedder: Embedder,
    seconds: Mapping[str, float],
    counts: Mapping[str, int] | None = None,
    progress: bool = False,
    slice_rows: int | None = None,
) -> BuildResult:
    """Write embedded chunks as a snapshot (Chroma, BM25, sentence vectors, manifest).

    Args:
        config: the build's config (index settings; whether sentence vectors are wanted).
        corpus: the documents the chunks came from (fingerprint, counts, ingestion report).
        chunks: the chunks, in document order.
        vectors: one embedding per chunk, in the same order: one matrix, or consecutive
            slices of it that are written as they come (``rag_model.index.build_index``).
        snapshot_dir: a new or empty folder.
        embedder: the embedder that made ``vectors`` (its id goes into the manifest); it also
            embeds the chunks' sentences when the config wants sentence vectors (a
            ``PrecomputedEmbedder`` when they were embedded elsewhere).
        seconds: the timings of the steps before this one; ``index_seconds`` and
            ``build_seconds`` (their sum plus this step) are added.
        counts: the chunk counts of the embedding step (``build_chunks_*``); the sentence
            counts (``build_sentences_*``) are added.
        progress: one line or a bar per step.
        slice_rows: sentences embedded and written at a time (None: all at once).
    """
    started = time.perf_counter()
    sentences = Tally(embedder)
    manifest = build_index(
        chunks,
        vectors,
        snapshot_dir,
        config.index,
        embedder_id=embedder.model_id,
        corpus_fingerprint=corpus_fingerprint(corpus.documents),
        sentence_embedder=sentences if wants_sentence_vectors(config) else None,
        batch_size=config.embedding.batch_size,
        documents=documents_table(corpus.documents, chunks),
        progress=progress,
        slice_rows=slice_rows,
    )
    index_seconds = time.perf_counter() - started
    return BuildResult(
        snapshot_dir=Path(snapshot_dir),
        manifest=manifest,
        document_count=len(corpus.documents),
        chunk_count=len(chunks),
        skipped=corpus.skipped,
        ingestion_report=corpus.report(),
        counts={**(counts or {}), **sentences.counts("build_sentences")},
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
        or retrieval.search_unit != "chunk"
    )
    return config.index.sentence_vectors and uses
