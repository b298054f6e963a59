"""Turn one file into documents: text, Markdown, HTML (text without markup), PDF (per page).

JSONL and BEIR corpora are read by ``ingestion`` (one document per line). Each reader raises
``IngestionError`` with the file's name and what was wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from rag_model.documents import Document
from rag_model.errors import IngestionError

HTML_SUFFIXES = (".html", ".htm")
PDF_SUFFIXES = (".pdf",)


def read_text(file: Path, relative: str) -> str:
    """A UTF-8 text file's content (a BOM is dropped); binary junk is refused."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise IngestionError(f"{relative}: {exc.strerror or exc}") from None
    if b"\x00" in data[:8192]:
        raise IngestionError(f"{relative}: looks binary (NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestionError(f"{relative}: not valid UTF-8 text (byte {exc.start})") from None


def read_plain(file: Path, relative: str) -> list[Document]:
    """A .txt or .md file as one document; a Markdown ``# heading`` becomes its title."""
    text = read_text(file, relative)
    if not text.strip():
        return []
    title = file.stem
    for line in text.splitlines():
        if line.startswith("# "):
            title = line[2:].strip()
            break
    return [Document(id=relative, text=text, metadata={"source": relative, "title": title})]


def read_html(file: Path, relative: str) -> list[Document]:
    """An HTML page's visible text (no scripts, styles or markup) as one document."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(read_text(file, relative), "html.parser")
    for hidden in soup(["script", "style", "noscript", "template", "head"]):
        if hidden.name != "head":
            hidden.decompose()
    title_tag = soup.find("title") or soup.find("h1")
    title = title_tag.get_text(" ", strip=True) if title_tag else file.stem
    if soup.head:
        soup.head.decompose()
    lines = (re.sub(r"\s+", " ", line).strip() for line in soup.get_text("\n").splitlines())
    text = "\n".join(line for line in lines if line)
    if not text:
        return []
    return [Document(id=relative, text=text, metadata={"source": relative, "title": title})]


def read_pdf(file: Path, relative: str) -> list[Document]:
    """A PDF as one document per page with text; metadata ``page`` is 1-based."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(file))
        pages = [
            (number, page.extract_text() or "") for number, page in enumerate(reader.pages, start=1)
        ]
    except (PdfReadError, ValueError, OSError) as exc:
        raise IngestionError(f"{relative}: not a readable PDF ({exc})") from None
    title = reader.metadata.title if reader.metadata and reader.metadata.title else file.stem
    return [
        Document(
            id=f"{relative}#page={number}",
            text=text,
            metadata={"source": relative, "title": str(title), "page": number},
        )
        for number, text in pages
        if text.strip()
    ]


# Each supported file type (lower-case suffix) and its reader: the one list of what can be read.
# ``ingestion.SUPPORTED_SUFFIXES`` derives from it (plus JSONL, read line by line there).
READERS: dict[str, Callable[[Path, str], list[Document]]] = {
    ".txt": read_plain,
    ".md": read_plain,
    **dict.fromkeys(HTML_SUFFIXES, read_html),
    **dict.fromkeys(PDF_SUFFIXES, read_pdf),
}


def reader_for(suffix: str) -> Callable[[Path, str], list[Document]] | None:
    """The reader of a file type, or None when the type is not supported."""
    return READERS.get(suffix)
