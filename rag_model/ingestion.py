"""Read documents from a folder (.txt, .md, .html, .pdf, .jsonl) or from one such file.

JSONL lines are ``{"id", "text", "metadata"?}``; BEIR corpora (``{"_id", "title", "text"}``)
are read the same way. Nothing is dropped silently: other file types and empty files are listed
as skipped with the reason, and a file that cannot be read (bad encoding, binary junk, too
large, malformed line, broken PDF) stops ingestion with every such file named.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag_model.documents import Document, MetadataValue
from rag_model.errors import IngestionError
from rag_model.readers import READERS, read_text, reader_for

JSONL_SUFFIXES = (".jsonl",)
SUPPORTED_SUFFIXES = (*READERS, *JSONL_SUFFIXES)  # derived: add a type to READERS only
MAX_FILE_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class Corpus:
    """The documents read from a path, and the files that were skipped with the reason."""

    documents: list[Document]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)  # documents read per file type

    def report(self) -> dict[str, Any]:
        """The ingestion report logged with a run: counts, and each skipped file and why."""
        return {
            "documents": len(self.documents),
            "documents_per_file_type": self.files,
            "skipped": [{"path": path, "reason": reason} for path, reason in self.skipped],
        }


def load_documents(path: str | Path, max_file_bytes: int = MAX_FILE_BYTES) -> Corpus:
    """Read every supported document under ``path`` (a folder, a .jsonl, .txt or .md file).

    Raises:
        IngestionError: the path does not exist, a supported file cannot be read (all such
            files are named), two documents share an id, or no document was found.
    """
    if not str(path).strip():  # Path("") would mean the current folder
        raise IngestionError("the data path is empty; pass a folder of documents or a .jsonl file")
    root = Path(path)
    if not root.exists():
        raise IngestionError(f"data path {root} does not exist; pass a folder or a .jsonl file")
    if root.is_file() and root.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise IngestionError(
            f"data path {root}: unsupported type {root.suffix or '(none)'}; pass a folder or a "
            f"{', '.join(SUPPORTED_SUFFIXES)} file"
        )
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    base = root.parent if root.is_file() else root

    documents: list[Document] = []
    skipped: list[tuple[str, str]] = []
    failures: list[tuple[str, str]] = []  # (file, what is wrong with it)
    per_type: dict[str, int] = {}
    for file in files:
        relative = file.relative_to(base).as_posix()
        suffix = file.suffix.lower()
        if any(part.startswith(".") for part in file.relative_to(base).parts):
            skipped.append((relative, "hidden file"))
            continue
        if suffix not in SUPPORTED_SUFFIXES:
            skipped.append((relative, f"unsupported type {suffix or '(none)'}"))
            continue
        size = file.stat().st_size
        if size > max_file_bytes:
            failures.append(
                (
                    relative,
                    f"{relative}: {size / 1e6:.1f} MB is over the {max_file_bytes / 1e6:.0f} MB "
                    "limit per file; split it",
                )
            )
            continue
        try:
            if suffix in JSONL_SUFFIXES:
                found = _read_jsonl(file, relative)
            else:
                reader = reader_for(suffix)
                assert reader is not None
                found = reader(file, relative)
        except IngestionError as exc:
            failures.append((relative, str(exc)))
            continue
        if not found:
            skipped.append((relative, "no records" if suffix in JSONL_SUFFIXES else "no text"))
            continue
        documents.extend(found)
        per_type[suffix] = per_type.get(suffix, 0) + len(found)

    if len(failures) == 1:
        relative, problem = failures[0]
        # one line: the file's full path, then what is wrong ("line 3: ...", "not valid UTF-8")
        where = f"{base / relative}"
        detail = problem.removeprefix(relative).lstrip(": ")
        raise IngestionError(f"cannot read {where}: {detail}; fix or remove the file")
    if failures:
        raise IngestionError(
            f"{len(failures)} file(s) under {root} could not be read; fix or remove them:\n  "
            + "\n  ".join(problem for _, problem in failures)
        )
    _check_unique_ids(documents)
    if not documents and root.is_file():
        raise IngestionError(f"no documents found in {root}: {skipped[0][1]}")
    if not documents:
        raise IngestionError(
            f"no documents found in {root}: expected {', '.join(SUPPORTED_SUFFIXES)} files"
            + (f" ({len(skipped)} other file(s) skipped)" if skipped else "")
        )
    return Corpus(documents=documents, skipped=skipped, files=per_type)


def _read_jsonl(file: Path, relative: str) -> list[Document]:
    documents = []
    for number, line in enumerate(read_text(file, relative).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{relative} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise IngestionError(f"{where}: invalid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise IngestionError(f"{where}: expected an object with 'id' and 'text'")
        # BEIR corpora (corpus.jsonl) spell the id "_id" and carry a separate title
        doc_id = record.get("id", record.get("_id"))
        text = record.get("text")
        title = record.get("title")
        if isinstance(title, str) and title.strip() and isinstance(text, str):
            text = f"{title.strip()}\n\n{text}"
        if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool) or str(doc_id) == "":
            raise IngestionError(
                f"{where}: 'id' (or BEIR '_id') must be a non-empty string or integer"
            )
        if not isinstance(text, str) or not text.strip():
            raise IngestionError(f"{where}: 'text' must be a non-empty string")
        metadata = record.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise IngestionError(f"{where}: 'metadata' must be an object")
        extra = {"title": title.strip()} if isinstance(title, str) and title.strip() else {}
        documents.append(
            Document(
                id=str(doc_id),
                text=text,
                metadata={"source": relative, **extra, **_scalar_metadata(metadata, where)},
            )
        )
    return documents


def _scalar_metadata(metadata: dict[str, object], where: str) -> dict[str, MetadataValue]:
    clean: dict[str, MetadataValue] = {}
    for key, value in metadata.items():
        # Chroma can filter only on scalars; refusing here beats a confusing error at indexing
        if not isinstance(value, (str, int, float, bool)):
            raise IngestionError(
                f"{where}: metadata {key!r} must be a string, number or boolean, "
                f"got {type(value).__name__}"
            )
        clean[key] = value
    return clean


def _check_unique_ids(documents: list[Document]) -> None:
    seen: dict[str, str] = {}
    for doc in documents:
        source = str(doc.metadata.get("source", ""))
        if doc.id in seen:
            raise IngestionError(
                f"document id {doc.id!r} appears twice ({seen[doc.id]} and {source}); "
                "ids must be unique across the corpus"
            )
        seen[doc.id] = source
