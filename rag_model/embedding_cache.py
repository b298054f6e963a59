"""A persistent embedding cache: vectors keyed by (embedder identity, sha256 of the text).

Every build goes through it (``main``, ``build_index``, ``sweep``, ``rag-model build``, Spark
builds, and the build-time sentence vectors), so a rebuild after a few documents changed embeds
only their chunks, and sweep configurations that produce the same chunk texts share vectors.

Storage: one SQLite file in WAL mode. Several processes may read and write it at once (SQLite
serialises writers and each insert batch is one transaction, so a build that dies mid-way leaves
whole entries or none). Each entry carries the sha256 of its key and vector bytes: an entry that
does not match (a damaged page, a truncated write, an edit by hand) is counted as ``corrupt``,
embedded again and overwritten, never served.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag_model.config import EmbeddingConfig
from rag_model.embedders import Embedder
from rag_model.errors import ConfigError
from rag_model.minilm import MINILM_WEIGHTS_SHA256
from rag_model.progress import steps

log = logging.getLogger(__name__)

# the project's working folder: relative to where the command runs (`mlflow run` runs in the
# project folder); `--embedding-cache PATH` moves it, `--embedding-cache none` turns it off
DEFAULT_CACHE_PATH = ".rag-model/embedding-cache/embeddings.sqlite3"
DISABLED = "none"

# table v2: ``checksum`` added; the v1 table ``vectors`` (no checksum) is left unread
SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    embedder TEXT NOT NULL,
    text_sha256 TEXT NOT NULL,
    vector BLOB NOT NULL,
    checksum TEXT NOT NULL,
    PRIMARY KEY (embedder, text_sha256)
)
"""
LOOKUP_CHUNK = 500  # SQLite limits the number of parameters of one statement
STORE_CHUNK = 2_000  # entries per write transaction: short locks when two builds share a file
EMBED_BLOCK = 512  # texts embedded, then stored, at a time (the progress bar's unit)


def embedder_identity(config: EmbeddingConfig) -> str:
    """What makes two embedders give the same vectors: model, backend, weights and settings.

    The batch size and the query-time cache size only change speed, so they are left out; the
    backend (torch or onnxruntime vectors differ in float noise) and the MiniLM weights' pinned
    sha256 are in, so other weights or another runtime never read these vectors.
    """
    settings = config.model_dump(exclude={"batch_size", "query_cache_size"})
    settings["weights_sha256"] = MINILM_WEIGHTS_SHA256
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]


def cache_path_option(value: str | Path | None) -> Path | None:
    """The cache file a ``--embedding-cache`` value names: None for ``none`` (no cache).

    Raises:
        ConfigError: the value names an existing folder instead of a file.
    """
    if value is None or str(value).strip().lower() in (DISABLED, ""):
        return None
    path = Path(value)
    if path.is_dir():
        raise ConfigError(
            f"--embedding-cache {value} is a folder; give a file path such as "
            f"{path / 'embeddings.sqlite3'}, or 'none' to build without a cache"
        )
    return path


def _checksum(identity: str, key: str, blob: bytes) -> str:
    return hashlib.sha256(identity.encode() + key.encode() + blob).hexdigest()


class PersistentEmbeddingCache(Embedder):
    """Serves cached vectors and embeds only texts it has not seen with this embedder.

    The inner embedder is loaded only if some text is missing, so a fully cached build never
    loads the encoder. ``hits`` and ``misses`` count texts; ``corrupt`` counts entries that
    failed their checksum (each also counts as a miss: it was embedded again).
    """

    def __init__(self, inner: Embedder, path: str | Path, identity: str) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self.identity = identity
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0
        self.corrupt = 0
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=120)
        self._db.execute("PRAGMA busy_timeout=120000")  # another build holds the write lock
        self._db.execute("PRAGMA journal_mode=WAL")
        with self._db:
            self._db.execute(SCHEMA)

    def token_counter(self):  # noqa: ANN201 - same signature as the inner embedder's
        return self.inner.token_counter()

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed(texts)

    def embed(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        # rows of each distinct text; vectors go straight into one float32 matrix (no list or
        # dict of per-text arrays: at a million chunks those would cost gigabytes)
        rows: dict[str, list[int]] = {}
        first_text: dict[str, str] = {}
        for row, text in enumerate(texts):
            key = hashlib.sha256(text.encode()).hexdigest()
            rows.setdefault(key, []).append(row)
            first_text.setdefault(key, text)
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        found = self._lookup_into(rows, vectors)
        missing = [key for key in rows if key not in found]
        # longest first, as Embedder.embed orders a batch (less padding), then in blocks that
        # are stored as soon as they are embedded: a build stopped after an hour keeps its work
        missing.sort(key=lambda key: -len(first_text[key]))
        # an inner embedder may ask for larger blocks (Spark: one job per block)
        block_size = getattr(self.inner, "embed_block", EMBED_BLOCK)
        blocks = range(0, len(missing), block_size)
        label = f"embedding {len(missing)} new of {len(rows)} texts"
        for start in steps(blocks, label, progress and bool(missing), "block"):
            block = missing[start : start + block_size]
            fresh = np.asarray(
                self.inner.embed([first_text[key] for key in block], batch_size),
                dtype=np.float32,
            )
            for key, vector in zip(block, fresh, strict=True):
                vectors[rows[key]] = vector
            self._store(block, fresh)
        self.misses += len(missing)
        self.hits += len(texts) - len(missing)
        return vectors

    def _lookup_into(self, rows: dict[str, list[int]], vectors: np.ndarray) -> set[str]:
        """Copy the cached vectors of ``rows``' keys into ``vectors``; the keys found."""
        wanted, found, corrupt = sorted(rows), set(), 0
        width = self.dimension * 4
        with self._lock:
            for start in range(0, len(wanted), LOOKUP_CHUNK):
                part = wanted[start : start + LOOKUP_CHUNK]
                cursor = self._db.execute(
                    "SELECT text_sha256, vector, checksum FROM embeddings WHERE embedder = ? "
                    f"AND text_sha256 IN ({','.join('?' * len(part))})",
                    [self.identity, *part],
                )
                for key, blob, checksum in cursor:
                    if len(blob) != width or checksum != _checksum(self.identity, key, blob):
                        corrupt += 1  # left out: embedded again, then overwritten
                        continue
                    vectors[rows[key]] = np.frombuffer(blob, dtype=np.float32)
                    found.add(key)
        if corrupt:
            self.corrupt += corrupt
            log.warning(
                "embedding cache %s: %d entries failed their checksum; they are embedded again",
                self.path,
                corrupt,
            )
        return found

    def _store(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        with self._lock:
            for start in range(0, len(keys), STORE_CHUNK):
                rows = []
                for key, vector in zip(
                    keys[start : start + STORE_CHUNK],
                    vectors[start : start + STORE_CHUNK],
                    strict=True,
                ):
                    blob = vector.tobytes()
                    rows.append((self.identity, key, blob, _checksum(self.identity, key, blob)))
                with self._db:  # one transaction: whole entries or none
                    self._db.executemany(
                        "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)", rows
                    )

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()


def cached_embedder(inner: Embedder, config: EmbeddingConfig, path: str | Path | None) -> Embedder:
    """``inner`` behind the persistent cache at ``path``, or ``inner`` itself when None."""
    if path is None:
        return inner
    return PersistentEmbeddingCache(inner, path, embedder_identity(config))
