"""Tests for the value types' helpers: stable chunk ids and the corpus fingerprint."""

from __future__ import annotations

import re

from rag_model.documents import Document, chunk_id, corpus_fingerprint

DOCS = [
    Document(id="a.txt", text="Oxygen is an element."),
    Document(id="b.txt", text="Iron is a metal."),
    Document(id="c.txt", text="Brunel built the bridge."),
]


def test_corpus_fingerprint_does_not_depend_on_order() -> None:
    assert corpus_fingerprint(DOCS) == corpus_fingerprint(list(reversed(DOCS)))
    assert re.fullmatch(r"[0-9a-f]{64}", corpus_fingerprint(DOCS))


def test_corpus_fingerprint_changes_when_a_text_changes() -> None:
    changed = [DOCS[0], Document(id="b.txt", text="Iron is a metal!"), DOCS[2]]

    assert corpus_fingerprint(changed) != corpus_fingerprint(DOCS)


def test_corpus_fingerprint_changes_when_an_id_changes_or_a_document_is_dropped() -> None:
    renamed = [DOCS[0], Document(id="B.txt", text=DOCS[1].text), DOCS[2]]

    assert corpus_fingerprint(renamed) != corpus_fingerprint(DOCS)
    assert corpus_fingerprint(DOCS[:2]) != corpus_fingerprint(DOCS)


def test_corpus_fingerprint_ignores_metadata() -> None:
    with_metadata = [Document(id=d.id, text=d.text, metadata={"title": "x"}) for d in DOCS]

    assert corpus_fingerprint(with_metadata) == corpus_fingerprint(DOCS)


def test_chunk_id_is_stable_and_depends_on_document_offset_and_text() -> None:
    identifier = chunk_id("a.txt", 0, "Oxygen")

    assert identifier == chunk_id("a.txt", 0, "Oxygen")
    assert re.fullmatch(r"[0-9a-f]{32}", identifier)
    assert chunk_id("b.txt", 0, "Oxygen") != identifier
    assert chunk_id("a.txt", 1, "Oxygen") != identifier
    assert chunk_id("a.txt", 0, "oxygen") != identifier
