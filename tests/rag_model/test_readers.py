"""Document formats on real files the tests write: HTML, PDF pages, BEIR JSONL, junk, size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag_model.errors import IngestionError
from rag_model.ingestion import load_documents

HTML = """<!doctype html><html><head><title>Steam engines</title>
<style>body { color: red }</style><script>var secret = "do not index";</script></head>
<body><h1>Steam</h1><p>Watt improved the <b>steam engine</b> in 1776.</p>
<noscript>enable js</noscript><p>It powered   mills.</p></body></html>"""


def make_pdf(path: Path, pages: list[str]) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title("Oxygen notes")
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 10, text)
    pdf.output(str(path))


def test_html_keeps_visible_text_and_title_only(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text(HTML)
    (document,) = load_documents(tmp_path).documents
    assert document.text == "Steam\nWatt improved the\nsteam engine\nin 1776.\nIt powered mills."
    assert document.metadata == {"source": "page.html", "title": "Steam engines"}
    assert "secret" not in document.text and "color" not in document.text


def test_pdf_gives_one_document_per_page_with_its_number(tmp_path: Path) -> None:
    make_pdf(tmp_path / "notes.pdf", ["Oxygen is element eight.", "", "It supports combustion."])
    documents = load_documents(tmp_path).documents
    assert [d.id for d in documents] == ["notes.pdf#page=1", "notes.pdf#page=3"]  # blank page 2
    assert [d.metadata["page"] for d in documents] == [1, 3]
    assert documents[0].metadata["title"] == "Oxygen notes"
    assert "element eight" in documents[0].text


def test_a_broken_pdf_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    with pytest.raises(IngestionError, match="broken.pdf: not a readable PDF"):
        load_documents(tmp_path)


def test_beir_corpus_lines_use_id_and_title(tmp_path: Path) -> None:
    lines = [
        {"_id": "4983", "title": "White matter", "text": "Diffusion imaging."},
        {"_id": "5836", "title": "", "text": "No title here."},
    ]
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    first, second = load_documents(tmp_path / "corpus.jsonl").documents
    assert (first.id, first.text) == ("4983", "White matter\n\nDiffusion imaging.")
    assert first.metadata["title"] == "White matter"
    assert (second.id, second.text) == ("5836", "No title here.")


def test_binary_junk_and_oversized_files_are_refused_with_their_names(tmp_path: Path) -> None:
    (tmp_path / "junk.txt").write_bytes(b"\x00\x01\x02binary")
    (tmp_path / "big.md").write_text("x" * 2_000_000)
    (tmp_path / "ok.txt").write_text("fine")
    with pytest.raises(IngestionError) as error:
        load_documents(tmp_path, max_file_bytes=1_000_000)
    message = str(error.value)
    assert message.startswith("2 file(s) under")
    assert "junk.txt: looks binary (NUL bytes), not text" in message
    assert "big.md: 2.0 MB is over the 1 MB limit per file; split it" in message


def test_the_report_lists_counts_and_every_skipped_file(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "b.html").write_text(HTML)
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / "empty.jsonl").write_text("\n")
    report = load_documents(tmp_path).report()
    assert report["documents"] == 2
    assert report["documents_per_file_type"] == {".html": 1, ".txt": 1}
    assert report["skipped"] == [
        {"path": "empty.jsonl", "reason": "no records"},
        {"path": "image.png", "reason": "unsupported type .png"},
    ]


def test_supported_suffixes_are_the_readers_and_jsonl() -> None:
    from rag_model.ingestion import JSONL_SUFFIXES, SUPPORTED_SUFFIXES
    from rag_model.readers import READERS, reader_for

    assert SUPPORTED_SUFFIXES == (*READERS, *JSONL_SUFFIXES)
    assert all(reader_for(s) for s in SUPPORTED_SUFFIXES if s not in JSONL_SUFFIXES)
    assert reader_for(".docx") is None
