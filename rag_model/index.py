"""A Chroma persistent index written as a verifiable snapshot folder.

Layout of a snapshot::

    <snapshot>/manifest.json   chunk count, embedding dimension, corpus fingerprint, file digests
    <snapshot>/chroma/...      Chroma's persistent directory

Chroma cannot open a read-only directory and writes into the one it opens, so a snapshot is
never opened in place: the first process on a host copies its Chroma folder once, lazily, on
first use, and every process opening the same snapshot shares that copy
(``rag_model.chroma_share``). Opening lazily also keeps Chroma clients out of a gunicorn master
(they hang the workers).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag_model.chroma_share import SharedCopy, copy_key
from rag_model.config import IndexConfig
from rag_model.corpus_table import write_documents_table
from rag_model.documents import Chunk, RetrievedChunk
from rag_model.embedders import Embedder
from rag_model.errors import ConfigError, IndexNotFoundError, IntegrityError, QueryError
from rag_model.lexical import BM25_DIR, Bm25Index
from rag_model.manifest import MANIFEST_NAME, read_manifest, verify_manifest, write_manifest
from rag_model.progress import steps, timed_step
from rag_model.sentences import SENTENCES_DIR, SentenceVectors, build_sentence_vectors

log = logging.getLogger(__name__)

COLLECTION_NAME = "rag_chunks"
CHUNK_CACHE_ENTRIES = 200_000  # chunk texts kept in memory per process (~160 MB at 800 chars)
CHROMA_DIR = "chroma"


def _client(path: Path) -> Any:
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(
        path=str(path), settings=Settings(anonymized_telemetry=False, allow_reset=False)
    )


def build_index(
    chunks: Sequence[Chunk],
    embeddings: np.ndarray | Iterable[np.ndarray],
    snapshot_dir: str | Path,
    config: IndexConfig,
    *,
    embedder_id: str,
    corpus_fingerprint: str,
    sentence_embedder: Embedder | None = None,
    batch_size: int = 32,
    documents: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool = False,
    slice_rows: int | None = None,
) -> dict[str, Any]:
    """Write ``chunks`` and their ``embeddings`` as a Chroma snapshot; return its manifest.

    ``embeddings``: one float32 matrix, or an iterable of consecutive slices of it in chunk
    order (each written to Chroma as it comes, so all vectors are never in memory at once).
    With ``sentence_embedder`` the snapshot also carries every chunk's sentence vectors
    (``rag_model.sentences``), for extractive answers that embed only the question; they are
    embedded ``slice_rows`` at a time (None: all at once). With ``documents``
    (``rag_model.corpus_table``) it records each document's digest and chunk ids. A build that
    fails part way leaves no files behind.

    Raises:
        ConfigError: the snapshot folder is not empty.
        ValueError: chunks and embeddings disagree.
    """
    snapshot = Path(snapshot_dir)
    check_snapshot_target(snapshot)
    if isinstance(embeddings, np.ndarray) and len(chunks) != len(embeddings):
        raise ValueError(f"{len(chunks)} chunks but {len(embeddings)} embeddings")
    if not chunks:
        raise ValueError("cannot build an index with no chunks")
    created = not snapshot.exists()
    snapshot.mkdir(parents=True, exist_ok=True)
    try:
        dimension = _write_chroma(chunks, embeddings, snapshot / CHROMA_DIR, config, progress)
        # BM25 is cheap to build, so every snapshot has it and the mode can change without
        # re-embedding (sweeps over retrieval.mode reuse one snapshot)
        with timed_step("bm25", progress, f"{len(chunks)} chunks"):
            Bm25Index.build(chunks, snapshot / BM25_DIR)
        if sentence_embedder is not None:
            build_sentence_vectors(
                chunks,
                sentence_embedder,
                snapshot / SENTENCES_DIR,
                batch_size,
                progress,
                slice_rows=slice_rows,
            )
        if documents is not None:
            write_documents_table(snapshot, documents)
        return write_manifest(
            snapshot,
            chunk_count=len(chunks),
            embedding_dimension=dimension,
            embedder=embedder_id,
            corpus_fingerprint=corpus_fingerprint,
            space=config.space,
        )
    except BaseException:
        # a half-written folder could not be built into again ("not empty"): remove it
        shutil.rmtree(snapshot, ignore_errors=True)
        if not created:
            snapshot.mkdir(exist_ok=True)
        raise


def _write_chroma(
    chunks: Sequence[Chunk],
    embeddings: np.ndarray | Iterable[np.ndarray],
    folder: Path,
    config: IndexConfig,
    progress: bool,
) -> int:
    """Add the chunks and their vectors to a new collection in ``folder``; the dimension."""
    client = _client(folder)
    try:
        collection = client.create_collection(
            COLLECTION_NAME,
            embedding_function=None,
            configuration={
                "hnsw": {
                    "space": config.space,
                    "max_neighbors": config.hnsw_m,
                    "ef_construction": config.hnsw_construction_ef,
                    "ef_search": config.hnsw_search_ef,
                }
            },
        )
        step = client.get_max_batch_size()
        added, dimension = 0, None
        for start, vectors in steps(
            _batches(embeddings, step, len(chunks)), "chroma write", progress, "batch"
        ):
            batch = chunks[start : start + len(vectors)]
            if dimension is None:
                dimension = int(vectors.shape[1])
            collection.add(
                ids=[chunk.id for chunk in batch],
                embeddings=vectors,
                documents=[chunk.text for chunk in batch],
                metadatas=[dict(chunk.metadata) for chunk in batch],
            )
            added = start + len(vectors)
        if added != len(chunks):
            raise ValueError(f"{len(chunks)} chunks but {added} embeddings")
        return int(dimension)
    finally:
        client.close()  # flushes and releases sqlite before the files are hashed


def _batches(
    embeddings: np.ndarray | Iterable[np.ndarray], step: int, total: int
) -> Iterable[tuple[int, np.ndarray]]:
    """(first row, vectors) of at most ``step`` rows, in order, from a matrix or its slices."""
    if isinstance(embeddings, np.ndarray):  # sized: a progress bar knows the batch count
        return [(start, embeddings[start : start + step]) for start in range(0, total, step)]
    return _slice_batches(embeddings, step, total)


def _slice_batches(
    slices: Iterable[np.ndarray], step: int, total: int
) -> Iterator[tuple[int, np.ndarray]]:
    start = 0
    for vectors in slices:
        if vectors.ndim != 2 or start + len(vectors) > total:
            raise ValueError(
                f"{total} chunks but at least {start + len(vectors)} embeddings"
                if vectors.ndim == 2
                else f"embeddings come as (rows, dimension) slices, got shape {vectors.shape}"
            )
        for offset in range(0, len(vectors), step):
            yield start + offset, vectors[offset : offset + step]
        start += len(vectors)


def check_snapshot_target(snapshot: Path) -> None:
    """Refuse to build into a folder that already holds files (nothing is overwritten)."""
    if snapshot.exists() and (not snapshot.is_dir() or any(snapshot.iterdir())):
        raise ConfigError(f"snapshot folder {snapshot} is not empty; choose a new folder")


class ChromaIndex:
    """A verified snapshot, opened lazily in the host's shared working copy.

    Example:
        >>> index = ChromaIndex.open("build/snapshot")    # verifies every file's sha256
        >>> index.query(vector, k=4, where={"title": "Oxygen"})
    """

    def __init__(self, snapshot_dir: Path, manifest: Mapping[str, Any]) -> None:
        self.snapshot_dir = snapshot_dir
        self.manifest = dict(manifest)
        self._pid: int | None = None
        self._client: Any = None
        self._collection: Any = None
        self._copy: SharedCopy | None = None
        self._chunks: dict[str, tuple[str, dict[str, Any]]] = {}

    @classmethod
    def open(cls, snapshot_dir: str | Path, verify: bool = True) -> ChromaIndex:
        """Verify the snapshot's manifest (no Chroma client is created yet).

        ``verify=False``: the manifest is read (its own digest checked), files are not hashed.

        Raises:
            IndexNotFoundError: there is no snapshot at ``snapshot_dir``.
            IntegrityError: a file is missing, altered or unexpected.
        """
        snapshot = Path(snapshot_dir)
        started = time.perf_counter()
        if not (snapshot / MANIFEST_NAME).is_file() and not (snapshot / CHROMA_DIR).is_dir():
            raise IndexNotFoundError(
                f"no Chroma snapshot at {snapshot}; build one with "
                "'rag-model build --data-path DATA --out FOLDER' or 'mlflow run . -e main'"
            )
        manifest = verify_manifest(snapshot) if verify else read_manifest(snapshot)
        if verify:
            log.info(
                "verified %d files of %s in %.1f s",
                len(manifest["files"]),
                snapshot,
                time.perf_counter() - started,
            )
        if manifest.get("location") == "server":
            raise IntegrityError(
                f"{snapshot} holds no Chroma files: its collection is on a Chroma server; "
                "load it with index.location 'server' (docs/chroma-server.md)"
            )
        return cls(snapshot, manifest)

    @property
    def chunk_count(self) -> int:
        return int(self.manifest["chunk_count"])

    @property
    def dimension(self) -> int:
        return int(self.manifest["embedding_dimension"])

    def warm_up(self) -> None:
        """Open the host's shared working copy of the snapshot (copied by the first process)."""
        if self._collection is not None and self._pid == os.getpid():
            return
        # after a fork the parent's client must not be reused: a client of this process's own
        started = time.perf_counter()
        key = copy_key(self.snapshot_dir, json.dumps(self.manifest, sort_keys=True).encode())
        held = SharedCopy.acquire(self.snapshot_dir / CHROMA_DIR, key)
        weakref.finalize(self, held.release)
        try:
            client = _client(held.path)
            collection = client.get_collection(COLLECTION_NAME, embedding_function=None)
            count = collection.count()
        except BaseException:
            held.release()
            raise
        if count != self.chunk_count:
            client.close()
            held.release()
            raise IntegrityError(
                f"{self.snapshot_dir}: Chroma holds {count} chunks, the manifest says "
                f"{self.chunk_count}; rebuild the index"
            )
        self._client, self._collection = client, collection
        self._copy, self._pid = held, os.getpid()
        # a serving worker's log: one line per load, with the counts (slow at 100k+ chunks)
        log.info(
            "opened %d chunks from %s (%s host copy %s) in %.1f s",
            count,
            self.snapshot_dir,
            "new" if held.copied else "shared",
            held.target,
            time.perf_counter() - started,
        )

    def chroma_collection(self) -> Any:
        """The opened Chroma collection itself (to publish it or compute its digest)."""
        self.warm_up()
        return self._collection

    def query(
        self, embedding: np.ndarray, k: int, where: Mapping[str, Any] | None = None
    ) -> list[RetrievedChunk]:
        """The ``k`` chunks nearest to ``embedding``, optionally filtered on metadata.

        Raises:
            QueryError: the filter is not a valid Chroma ``where`` clause.
        """
        return self.query_many(np.asarray(embedding)[None, :], k, where)[0]

    def query_many(
        self, embeddings: np.ndarray, k: int, where: Mapping[str, Any] | None = None
    ) -> list[list[RetrievedChunk]]:
        """``query`` for several vectors in one Chroma call."""
        self.warm_up()
        from chromadb.errors import InvalidArgumentError

        try:
            # ids and distances only: fetching documents and metadata inside the query costs
            # more than the search itself (2.5 vs 1.0 ms, 2,807 chunks); texts come from the
            # chunk cache below, and Chroma only for chunks not seen yet
            result = self._collection.query(
                query_embeddings=np.asarray(embeddings, dtype=np.float32),
                n_results=min(k, self.chunk_count),
                where=dict(where) if where else None,
                include=["distances"],
            )
        # a malformed where clause: ValueError from chromadb's Python checks, and
        # InvalidArgumentError from its Rust core for what those let through ({"$gt": inf})
        except (ValueError, InvalidArgumentError) as exc:
            raise QueryError(f"invalid filter: {exc}", field="filter") from None
        space = self.manifest.get("space", "cosine")
        found = self.get([identifier for ids in result["ids"] for identifier in ids])
        return [
            [
                RetrievedChunk(
                    id=identifier,
                    document_id=str(found[identifier][1].get("document_id", "")),
                    text=found[identifier][0],
                    score=_score(distance, space),
                    metadata=dict(found[identifier][1]),
                )
                for identifier, distance in zip(ids, distances, strict=True)
            ]
            for ids, distances in zip(result["ids"], result["distances"], strict=True)
        ]

    def get(self, ids: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        """``{id: (text, metadata)}`` for chunks found by a search or another retriever (BM25).

        Texts are immutable per snapshot, so they are kept in a bounded cache after the first
        fetch: popular chunks are read from Chroma's sqlite once, not once per question.
        """
        if not ids:
            return {}
        self.warm_up()
        cache = self._chunks
        found = {}
        for identifier in ids:
            entry = cache.get(identifier)
            if entry is not None:
                found[identifier] = entry
        missing = [identifier for identifier in dict.fromkeys(ids) if identifier not in found]
        if missing:
            fetched = self._collection.get(ids=missing, include=["documents", "metadatas"])
            if len(cache) + len(fetched["ids"]) > CHUNK_CACHE_ENTRIES:
                cache.clear()  # rare (indexes past the bound): start over rather than track use
            for identifier, text, metadata in zip(
                fetched["ids"], fetched["documents"], fetched["metadatas"], strict=True
            ):
                found[identifier] = cache[identifier] = (text or "", metadata or {})
        return found

    def ids_matching(self, where: Mapping[str, Any]) -> set[str]:
        """Ids of the chunks whose metadata match ``where`` (to filter BM25 results)."""
        self.warm_up()
        from chromadb.errors import InvalidArgumentError

        try:
            return set(self._collection.get(where=dict(where), include=[])["ids"])
        except (ValueError, InvalidArgumentError) as exc:
            raise QueryError(f"invalid filter: {exc}", field="filter") from None

    def sentence_vectors(self) -> SentenceVectors | None:
        """The build-time sentence vectors (memory-mapped), or None if the snapshot has none."""
        return SentenceVectors.open(self.snapshot_dir / SENTENCES_DIR)

    def lexical(self) -> Bm25Index:
        """The snapshot's BM25 index (covered by the verified manifest)."""
        return Bm25Index.open(self.snapshot_dir / BM25_DIR)

    def close(self) -> None:
        """Release the Chroma client and this process's hold on the host copy."""
        if self._client is not None and self._pid == os.getpid():
            self._client.close()
        self._client = self._collection = None
        if self._copy is not None:
            self._copy.release()  # the last holder on the host deletes the copy
            self._copy = None


def _score(distance: float, space: str) -> float:
    # cosine and ip distances are 1 - similarity; l2 is a squared distance, negated to rank.
    # float first: over HTTP Chroma returns float32 distances, and 1.0 - float32 rounds to
    # float32, so a server-mode index would score differently from the bundled one
    distance = float(distance)
    return float(1.0 - distance) if space in ("cosine", "ip") else float(-distance)
