"""Read documents from a folder of .txt/.md files or from a JSONL file.

Nothing is dropped silently: files of other types are listed as skipped, and a file that cannot
be read (bad encoding, no permission, malformed JSONL line) stops ingestion with its name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rag_model.documents import Document, MetadataValue
from rag_model.errors import IngestionError

TEXT_SUFFIXES = (".txt", ".md")
JSONL_SUFFIXES = (".jsonl",)
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + JSONL_SUFFIXES


@dataclass(frozen=True)
class Corpus:
    """The documents read from a path, and the files that were skipped with the reason."""

    documents: list[Document]
    skipped: list[tuple[str, str]] = field(default_factory=list)


def load_documents(path: str | Path) -> Corpus:
    """Read every supported document under ``path`` (a folder, a .jsonl, .txt or .md file).

    Raises:
        IngestionError: the path does not exist, a supported file cannot be read (all such
            files are named), two documents share an id, or no document was found.
    """
    root = Path(path)
    if not root.exists():
        raise IngestionError(f"data path {root} does not exist; pass a folder or a .jsonl file")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    base = root.parent if root.is_file() else root

    documents: list[Document] = []
    skipped: list[tuple[str, str]] = []
    failures: list[str] = []
    for file in files:
        relative = file.relative_to(base).as_posix()
        suffix = file.suffix.lower()
        if any(part.startswith(".") for part in file.relative_to(base).parts):
            skipped.append((relative, "hidden file"))
            continue
        if suffix not in SUPPORTED_SUFFIXES:
            skipped.append((relative, f"unsupported type {suffix or '(none)'}"))
            continue
        try:
            if suffix in JSONL_SUFFIXES:
                records = _read_jsonl(file, relative)
                if not records:
                    skipped.append((relative, "no records"))
                documents.extend(records)
            else:
                document = _read_text_file(file, relative)
                if document is None:
                    skipped.append((relative, "empty file"))
                else:
                    documents.append(document)
        except IngestionError as exc:
            failures.append(str(exc))

    if failures:
        raise IngestionError(
            f"{len(failures)} file(s) under {root} could not be read; fix or remove them:\n  "
            + "\n  ".join(failures)
        )
    _check_unique_ids(documents)
    if not documents:
        raise IngestionError(
            f"no documents found in {root}: expected {', '.join(SUPPORTED_SUFFIXES)} files"
            + (f" ({len(skipped)} other file(s) skipped)" if skipped else "")
        )
    return Corpus(documents=documents, skipped=skipped)


def _read_text(file: Path, relative: str) -> str:
    try:
        return file.read_text(encoding="utf-8-sig")  # a leading BOM is not text
    except UnicodeDecodeError as exc:
        raise IngestionError(f"{relative}: not valid UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise IngestionError(f"{relative}: {exc.strerror or exc}") from None


def _read_text_file(file: Path, relative: str) -> Document | None:
    text = _read_text(file, relative)
    if not text.strip():
        return None
    title = file.stem
    for line in text.splitlines():
        if line.startswith("# "):
            title = line[2:].strip()
            break
    return Document(id=relative, text=text, metadata={"source": relative, "title": title})


def _read_jsonl(file: Path, relative: str) -> list[Document]:
    documents = []
    for number, line in enumerate(_read_text(file, relative).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{relative} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise IngestionError(f"{where}: invalid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise IngestionError(f"{where}: expected an object with 'id' and 'text'")
        doc_id, text = record.get("id"), record.get("text")
        if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool) or str(doc_id) == "":
            raise IngestionError(f"{where}: 'id' must be a non-empty string or integer")
        if not isinstance(text, str) or not text.strip():
            raise IngestionError(f"{where}: 'text' must be a non-empty string")
        metadata = record.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise IngestionError(f"{where}: 'metadata' must be an object")
        documents.append(
            Document(
                id=str(doc_id),
                text=text,
                metadata={"source": relative, **_scalar_metadata(metadata, where)},
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
