"""A persistent embedding cache: vectors keyed by (embedder identity, sha256 of the text).

Sweeps build many indexes from the same corpus; configurations that produce the same chunk
texts (every k and retrieval mode, and often neighbouring chunk sizes) must not embed them
again. SQLite keeps the cache in one file that several processes may share (WAL mode).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag_model.config import EmbeddingConfig
from rag_model.embedders import Embedder
from rag_model.minilm import MINILM_WEIGHTS_SHA256

SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    embedder TEXT NOT NULL,
    text_sha256 TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (embedder, text_sha256)
)
"""
LOOKUP_CHUNK = 500  # SQLite limits the number of parameters of one statement


def embedder_identity(config: EmbeddingConfig) -> str:
    """What makes two embedders give the same vectors: model, weights and settings.

    The batch size only changes speed, so it is left out; the MiniLM weights' pinned sha256 is
    in, so new weights never read old vectors.
    """
    settings = config.model_dump(exclude={"batch_size"})
    settings["weights_sha256"] = MINILM_WEIGHTS_SHA256
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]


class PersistentEmbeddingCache(Embedder):
    """Serves cached vectors and embeds only texts it has not seen with this embedder.

    The inner embedder is loaded only if some text is missing, so a fully cached sweep never
    loads the encoder. ``hits`` and ``misses`` count texts.
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
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(SCHEMA)

    def token_counter(self):  # noqa: ANN201 - same signature as the inner embedder's
        return self.inner.token_counter()

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed(texts)

    def embed(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        keys = [hashlib.sha256(text.encode()).hexdigest() for text in texts]
        found = self._lookup(set(keys))
        missing = {key: text for key, text in zip(keys, texts, strict=True) if key not in found}
        if missing:
            fresh = self.inner.embed(list(missing.values()), batch_size, progress)
            found.update(zip(missing, fresh, strict=True))
            self._store(dict(zip(missing, fresh, strict=True)))
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.vstack([found[key] for key in keys])

    def _lookup(self, keys: set[str]) -> dict[str, np.ndarray]:
        wanted, found = sorted(keys), {}
        with self._lock:
            for start in range(0, len(wanted), LOOKUP_CHUNK):
                part = wanted[start : start + LOOKUP_CHUNK]
                rows = self._db.execute(
                    "SELECT text_sha256, vector FROM vectors WHERE embedder = ? AND text_sha256 "
                    f"IN ({','.join('?' * len(part))})",
                    [self.identity, *part],
                ).fetchall()
                found.update(
                    (key, np.frombuffer(blob, dtype=np.float32).copy()) for key, blob in rows
                )
        return found

    def _store(self, vectors: dict[str, np.ndarray]) -> None:
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                [
                    (self.identity, key, np.asarray(v, dtype=np.float32).tobytes())
                    for key, v in vectors.items()
                ],
            )

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()
