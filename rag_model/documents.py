"""The value types that flow through the pipeline: documents, chunks, retrieved chunks."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Chroma stores only scalar metadata values.
MetadataValue = str | int | float | bool


@dataclass(frozen=True)
class Document:
    """One source document, e.g. a file or a JSONL record."""

    id: str
    text: str
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Chunk:
    """A piece of a document; ``id`` is derived from its content, so re-ingesting is idempotent."""

    id: str
    document_id: str
    text: str
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)


@dataclass(frozen=True)
class RetrievedChunk:
    """A chunk returned for a question, with its similarity score (higher is closer)."""

    id: str
    document_id: str
    text: str
    score: float
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # why it ranked: "dense" similarity, "lexical" BM25 score, "fused" score (hybrid)
    scores: Mapping[str, float] = field(default_factory=dict)
    # the chunk's sentence closest to the question, when sentence re-scoring ranked it
    best_sentence: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready source every interface returns (scores rounded to 6 places).

        ``best_sentence`` is present only when sentence re-scoring found one.
        """
        data = {
            "id": self.id,
            "document_id": self.document_id,
            "text": self.text,
            "score": round(float(self.score), 6),
            "scores": {name: round(float(value), 6) for name, value in self.scores.items()},
            "metadata": dict(self.metadata),
        }
        if self.best_sentence is not None:
            data["best_sentence"] = self.best_sentence
        return data


def chunk_id(document_id: str, start: int, text: str) -> str:
    """A stable id from the chunk's document, offset and text (SHA-256, 32 hex characters)."""
    digest = hashlib.sha256(f"{document_id}\x1f{start}\x1f{text}".encode())
    return digest.hexdigest()[:32]


def corpus_fingerprint(documents: Iterable[Document]) -> str:
    """SHA-256 over the sorted (id, text digest) pairs: the same corpus gives the same value."""
    lines = sorted(
        f"{doc.id}\t{hashlib.sha256(doc.text.encode()).hexdigest()}" for doc in documents
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()
