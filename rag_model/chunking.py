"""Split documents into chunks with LangChain's recursive character splitter."""

from __future__ import annotations

from collections.abc import Iterable

from rag_model.config import ChunkingConfig
from rag_model.documents import Chunk, Document, chunk_id


def chunk_documents(documents: Iterable[Document], config: ChunkingConfig) -> list[Chunk]:
    """Split each document; the same documents and config always give the same chunks and ids.

    Each chunk keeps its document's metadata plus ``document_id``, ``chunk_index`` and
    ``start_index`` (character offset in the document).
    """
    try:
        from langchain_text_splitters import RecursiveCharacterTextSplitter
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ImportError(
            "chunking needs langchain-text-splitters; run 'pip install langchain-text-splitters'"
        ) from exc

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=config.chunk_size,
        chunk_overlap=config.chunk_overlap,
        add_start_index=True,
    )
    chunks: list[Chunk] = []
    seen: set[str] = set()
    for document in documents:
        pieces = splitter.create_documents([document.text])
        for index, piece in enumerate(pieces):
            start = int(piece.metadata["start_index"])
            identifier = chunk_id(document.id, start, piece.page_content)
            if identifier in seen:
                continue
            seen.add(identifier)
            chunks.append(
                Chunk(
                    id=identifier,
                    document_id=document.id,
                    text=piece.page_content,
                    metadata={
                        **document.metadata,
                        "document_id": document.id,
                        "chunk_index": index,
                        "start_index": start,
                    },
                )
            )
    return chunks
