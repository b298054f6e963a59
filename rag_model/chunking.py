"""Split documents into chunks: recursive (characters), token (embedder tokens) or sentence.

Chunk ids come from the document id, the chunk's offset and its text, so the same documents
and config always give the same chunks and ids, and re-ingesting is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rag_model.config import ChunkingConfig
from rag_model.documents import Chunk, Document, chunk_id

TokenCounter = Callable[[str], int]


def chunk_documents(
    documents: Iterable[Document],
    config: ChunkingConfig,
    token_counter: TokenCounter | None = None,
) -> list[Chunk]:
    """Split each document with ``config.strategy``.

    Args:
        documents: what to split.
        config: strategy, size and overlap.
        token_counter: the embedder's token count (``Embedder.token_counter()``); needed by the
            ``token`` and ``sentence`` strategies, whose sizes are in tokens.

    Each chunk keeps its document's metadata plus ``document_id``, ``chunk_index`` and
    ``start_index`` (character offset in the document).
    """
    if config.strategy != "recursive" and token_counter is None:
        raise ValueError(f"the {config.strategy!r} strategy needs the embedder's token counter")
    split = _splitter(config, token_counter)
    chunks: list[Chunk] = []
    seen: set[str] = set()
    for document in documents:
        position = 0
        for index, text in enumerate(split(document.text)):
            found = document.text.find(text, position)  # chunks come in document order
            # a splitter that normalises whitespace may return text not found verbatim
            start = found if found >= 0 else -(index + 1)
            position = max(position, found + 1) if found >= 0 else position
            identifier = chunk_id(document.id, start, text)
            if identifier in seen:
                continue
            seen.add(identifier)
            chunks.append(
                Chunk(
                    id=identifier,
                    document_id=document.id,
                    text=text,
                    metadata={
                        **document.metadata,
                        "document_id": document.id,
                        "chunk_index": index,
                        "start_index": start,
                    },
                )
            )
    return chunks


def _splitter(
    config: ChunkingConfig, token_counter: TokenCounter | None
) -> Callable[[str], list[str]]:
    if config.strategy == "sentence":
        try:
            from llama_index.core.node_parser import SentenceSplitter
        except ImportError as exc:  # pragma: no cover - a broken install
            raise ImportError(
                "the sentence strategy needs llama-index-core; run "
                "'pip install rag-model[llama-index]'"
            ) from exc
        assert token_counter is not None
        sentence = SentenceSplitter(
            chunk_size=config.chunk_size,
            chunk_overlap=config.chunk_overlap,
            tokenizer=lambda text: [0] * token_counter(text),  # only the length is used
        )
        return lambda text: [piece for piece in sentence.split_text(text) if piece.strip()]
    try:
        from langchain_text_splitters import RecursiveCharacterTextSplitter
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ImportError(
            "chunking needs langchain-text-splitters; run 'pip install langchain-text-splitters'"
        ) from exc
    recursive = RecursiveCharacterTextSplitter(
        chunk_size=config.chunk_size,
        chunk_overlap=config.chunk_overlap,
        length_function=token_counter if config.strategy == "token" else len,
    )
    return recursive.split_text
