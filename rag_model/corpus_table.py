"""The documents of a snapshot: each document's content sha256 and its chunk ids.

Written at build time as ``<snapshot>/documents.json`` (covered by the manifest's file
digests, so a model version carries it verified) and read by ``rag-model diff`` to tell which
documents were added, removed or changed between two versions. It lives beside the manifest
rather than inside it: at a million chunks the table is tens of MB, and every load reads and
digests the manifest itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag_model.documents import Chunk, Document
from rag_model.errors import IntegrityError

DOCUMENTS_FILE = "documents.json"
TABLE_FORMAT = 1


def document_digest(document: Document) -> str:
    """The sha256 of a document's text and metadata (either changes its chunks)."""
    metadata = json.dumps(dict(document.metadata), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(f"{document.text}\x1f{metadata}".encode()).hexdigest()


def documents_table(
    documents: Iterable[Document], chunks: Sequence[Chunk]
) -> dict[str, dict[str, Any]]:
    """``{document id: {"sha256": ..., "chunks": [chunk ids in order]}}``."""
    table = {doc.id: {"sha256": document_digest(doc), "chunks": []} for doc in documents}
    for chunk in chunks:
        table[chunk.document_id]["chunks"].append(chunk.id)
    return table


def write_documents_table(folder: Path, table: Mapping[str, Mapping[str, Any]]) -> None:
    """Write ``folder/documents.json`` (sorted, compact: one line per document)."""
    lines = ",\n".join(
        f"{json.dumps(key)}: {json.dumps(table[key], separators=(',', ':'))}"
        for key in sorted(table)
    )
    text = f'{{"format": {TABLE_FORMAT}, "documents": {{\n{lines}\n}}}}\n'
    (folder / DOCUMENTS_FILE).write_text(text, encoding="utf-8")


def read_documents_table(folder: Path) -> dict[str, dict[str, Any]] | None:
    """The table in ``folder``, or None for a snapshot built before tables were recorded."""
    path = folder / DOCUMENTS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return dict(data["documents"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise IntegrityError(
            f"{path} is not a documents table ({exc}); rebuild the version"
        ) from None


@dataclass(frozen=True)
class DocumentChanges:
    """Documents added, removed and changed from one table to another (sorted ids)."""

    added: list[str]
    removed: list[str]
    changed: list[str]
    unchanged: int
    chunks_before: int
    chunks_after: int
    chunks_added: int
    chunks_removed: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def compare_tables(
    before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]]
) -> DocumentChanges:
    """What changed between two documents tables."""
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    both = set(before) & set(after)
    changed = sorted(key for key in both if before[key]["sha256"] != after[key]["sha256"])
    old_chunks = {c for entry in before.values() for c in entry["chunks"]}
    new_chunks = {c for entry in after.values() for c in entry["chunks"]}
    return DocumentChanges(
        added=added,
        removed=removed,
        changed=changed,
        unchanged=len(both) - len(changed),
        chunks_before=sum(len(entry["chunks"]) for entry in before.values()),
        chunks_after=sum(len(entry["chunks"]) for entry in after.values()),
        chunks_added=len(new_chunks - old_chunks),
        chunks_removed=len(old_chunks - new_chunks),
    )
