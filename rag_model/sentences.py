"""Sentences of a chunk, and their vectors embedded at build time (extractive answers).

The extractive generator ranks the sentences of the retrieved chunks by similarity to the
question. Embedding those sentences at query time costs far more than the question itself
(about 20 sentences per answer), so the build embeds every chunk's sentences once and the
snapshot carries them::

    <snapshot>/sentences/vectors.npy   float32 (sentences, dimension), chunk after chunk
    <snapshot>/sentences/chunks.json   [[chunk id, sentence count], ...] in the same order

Both files are covered by the snapshot's manifest; serving memory-maps the vectors (no copy).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from rag_model.documents import Chunk
from rag_model.embedders import Embedder
from rag_model.errors import IntegrityError
from rag_model.progress import log_line

SENTENCES_DIR = "sentences"
VECTORS_FILE = "vectors.npy"
CHUNKS_FILE = "chunks.json"
# a sentence ends at . ! or ? followed by space and something that can start a sentence
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences on terminal punctuation (good enough for extraction).

    The build embeds and the extractive generator ranks exactly these sentences, so both call
    this one function. Markdown headings are left out: they are titles, not answers.
    """
    lines = (line for line in text.splitlines() if not line.lstrip().startswith("#"))
    pieces = (piece.strip() for line in lines for piece in _SENTENCE_END.split(line))
    return [piece for piece in pieces if len(piece) > 1]


def build_sentence_vectors(
    chunks: Sequence[Chunk],
    embedder: Embedder,
    folder: Path,
    batch_size: int = 32,
    progress: bool = False,
    slice_rows: int | None = None,
) -> int:
    """Embed every chunk's sentences into ``folder``; return the number of sentences.

    ``slice_rows``: embed and write this many sentences at a time, so only one slice of
    vectors is in memory (Spark builds); None: all in one call, as one batch order.
    """
    per_chunk = [split_sentences(chunk.text) for chunk in chunks]
    sentences = [sentence for group in per_chunk for sentence in group]
    log_line(progress, f"sentence vectors: {len(sentences)} sentences of {len(chunks)} chunks")
    size = slice_rows or max(len(sentences), 1)
    folder.mkdir(parents=True, exist_ok=True)
    save_rows(
        folder / VECTORS_FILE,
        len(sentences),
        embedder.dimension,
        (
            embedder.embed(sentences[start : start + size], batch_size, progress)
            for start in range(0, len(sentences), size)
        ),
    )
    table = [[chunk.id, len(group)] for chunk, group in zip(chunks, per_chunk, strict=True)]
    (folder / CHUNKS_FILE).write_text(json.dumps(table))
    return len(sentences)


def save_rows(path: Path, rows: int, dimension: int, slices: Iterable[np.ndarray]) -> None:
    """Write consecutive slices of a (rows, dimension) float32 matrix as one ``.npy`` file.

    The bytes are those ``np.save`` writes for the whole matrix, but only one slice is in
    memory at a time (a plain file write: a memory map would keep every written page resident).

    Raises:
        ValueError: the slices do not add up to ``rows`` rows of ``dimension`` columns.
    """
    header = {"descr": "<f4", "fortran_order": False, "shape": (int(rows), int(dimension))}
    written = 0
    with path.open("wb") as out:
        np.lib.format.write_array_header_1_0(out, header)
        for block in slices:
            block = np.ascontiguousarray(block, dtype="<f4")
            if block.ndim != 2 or block.shape[1] != dimension or written + len(block) > rows:
                raise ValueError(
                    f"{path.name}: a slice of shape {block.shape} does not fit {written} of "
                    f"({rows}, {dimension}) rows written"
                )
            out.write(block.tobytes())
            written += len(block)
    if written != rows:
        raise ValueError(f"{path.name}: {written} rows written, {rows} expected")


class SentenceVectors:
    """The build-time sentence vectors of a snapshot, by chunk id.

    Example:
        >>> store = SentenceVectors.open(snapshot / "sentences")
        >>> store.for_chunk("Oxygen-003", expected=5).shape
        (5, 384)
    """

    def __init__(self, vectors: np.ndarray, spans: dict[str, tuple[int, int]]) -> None:
        self.vectors = vectors
        self.spans = spans

    @classmethod
    def open(cls, folder: Path) -> SentenceVectors | None:
        """The store in ``folder`` (memory-mapped), or None when the snapshot has none.

        Raises:
            IntegrityError: the table and the vectors disagree.
        """
        if not (folder / CHUNKS_FILE).is_file():
            return None
        vectors = np.load(folder / VECTORS_FILE, mmap_mode="r")
        spans, start = {}, 0
        for chunk_id, count in json.loads((folder / CHUNKS_FILE).read_text()):
            spans[chunk_id] = (start, count)
            start += count
        if start != len(vectors):
            raise IntegrityError(
                f"{folder}: {CHUNKS_FILE} lists {start} sentences but {VECTORS_FILE} holds "
                f"{len(vectors)}; rebuild the index"
            )
        return cls(vectors, spans)

    def for_chunk(self, chunk_id: str, expected: int | None = None) -> np.ndarray | None:
        """The vectors of the chunk's sentences, or None if unknown or split differently.

        ``expected``: the number of sentences the caller split the chunk into (None: trust the
        build's split, which used the same ``split_sentences``).
        """
        span = self.spans.get(chunk_id)
        if span is None or (expected is not None and span[1] != expected):
            return None
        start, count = span
        return np.asarray(self.vectors[start : start + count])
