"""Tests for chunk_documents: idempotent ids, size limits and chunk metadata."""

from __future__ import annotations

import pytest

from rag_model.chunking import chunk_documents
from rag_model.config import ChunkingConfig
from rag_model.documents import Document

SMALL = ChunkingConfig(chunk_size=120, chunk_overlap=20)

LONG_TEXT = "\n\n".join(
    f"Paragraph {n} talks about topic number {n}. It has a second sentence about item {n}, "
    f"and a third one that mentions the colour {'red' if n % 2 else 'blue'}."
    for n in range(8)
)


@pytest.fixture
def documents() -> list[Document]:
    return [
        Document(id="long.txt", text=LONG_TEXT, metadata={"source": "long.txt", "title": "Long"}),
        Document(id="short.md", text="A short note.", metadata={"source": "short.md"}),
    ]


def test_same_documents_and_config_give_identical_chunks(documents: list[Document]) -> None:
    first = chunk_documents(documents, SMALL)
    second = chunk_documents(list(documents), ChunkingConfig(chunk_size=120, chunk_overlap=20))

    assert first == second
    assert len({chunk.id for chunk in first}) == len(first)


def test_a_different_document_id_gives_different_chunk_ids() -> None:
    a = chunk_documents([Document(id="a.txt", text=LONG_TEXT)], SMALL)
    b = chunk_documents([Document(id="b.txt", text=LONG_TEXT)], SMALL)

    assert [chunk.text for chunk in a] == [chunk.text for chunk in b]
    assert not {chunk.id for chunk in a} & {chunk.id for chunk in b}


def test_chunks_are_no_longer_than_chunk_size(documents: list[Document]) -> None:
    chunks = chunk_documents(documents, SMALL)

    long_chunks = [chunk for chunk in chunks if chunk.document_id == "long.txt"]
    assert len(long_chunks) > len(LONG_TEXT) // SMALL.chunk_size
    assert all(0 < len(chunk.text) <= SMALL.chunk_size for chunk in chunks)


def test_a_short_document_is_one_chunk_with_all_its_text(documents: list[Document]) -> None:
    chunks = [c for c in chunk_documents(documents, SMALL) if c.document_id == "short.md"]

    assert [chunk.text for chunk in chunks] == ["A short note."]


def test_chunk_metadata_extends_the_document_metadata(documents: list[Document]) -> None:
    chunks = [c for c in chunk_documents(documents, SMALL) if c.document_id == "long.txt"]

    for index, chunk in enumerate(chunks):
        assert chunk.metadata == {
            "source": "long.txt",
            "title": "Long",
            "document_id": "long.txt",
            "chunk_index": index,
            "start_index": chunk.metadata["start_index"],
        }


def test_start_index_points_at_the_chunk_text(documents: list[Document]) -> None:
    by_id = {document.id: document for document in documents}

    chunks = chunk_documents(documents, SMALL)

    starts = []
    for chunk in chunks:
        start = chunk.metadata["start_index"]
        assert by_id[chunk.document_id].text[start : start + len(chunk.text)] == chunk.text
        if chunk.document_id == "long.txt":
            starts.append(start)
    assert starts == sorted(set(starts))


def test_the_chunk_size_changes_the_chunks(documents: list[Document]) -> None:
    small = chunk_documents(documents, SMALL)
    large = chunk_documents(documents, ChunkingConfig(chunk_size=400, chunk_overlap=20))

    assert len(large) < len(small)
    assert {chunk.id for chunk in large} != {chunk.id for chunk in small}


def test_no_documents_give_no_chunks() -> None:
    assert chunk_documents([], SMALL) == []
