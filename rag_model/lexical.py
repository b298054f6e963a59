"""Lexical retrieval: a BM25 index (bm25s, English stopwords + Snowball stemmer) in the snapshot.

The index lives in ``<snapshot>/bm25/`` beside Chroma's folder, so the snapshot's manifest
covers it like every other file. It is read-only at query time (no private copy is needed).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag_model.documents import Chunk
from rag_model.errors import IndexNotFoundError

BM25_DIR = "bm25"
IDS_FILE = "chunk_ids.json"


@functools.cache
def _bm25s():  # noqa: ANN202 - the bm25s module
    import logging

    import bm25s

    # bm25s sets its logger to DEBUG at import; once anything (absl, via rouge_score) configures
    # the root handler, every index build would print a DEBUG line. Once per process: setLevel
    # clears every logger's cache, about 0.35 ms, which per query was 3% of an answer's CPU
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


def _tokenize(texts: list[str]):  # noqa: ANN202 - bm25s.tokenization.Tokenized
    bm25s = _bm25s()

    return bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer(), show_progress=False)


@functools.cache
def _stemmer():  # noqa: ANN202 - Stemmer.Stemmer
    # built once per process, not once per query (the hybrid default tokenizes every question)
    import Stemmer

    return Stemmer.Stemmer("english")


class Bm25Index:
    """BM25 over chunk texts; ``query`` returns (chunk id, score) pairs, best first.

    Example:
        >>> Bm25Index.build(chunks, snapshot / "bm25")
        >>> Bm25Index.open(snapshot / "bm25").query("norman conquest", k=5)
        [('3140cde6...', 7.21), ...]
    """

    def __init__(self, retriever: object, ids: list[str]) -> None:
        self._retriever = retriever
        self.ids = ids

    @functools.cached_property
    def _position(self) -> dict[str, int]:
        # built on the first filtered query only: ~70 MB per worker at 1M chunks otherwise
        return {identifier: i for i, identifier in enumerate(self.ids)}

    @classmethod
    def build(cls, chunks: Sequence[Chunk], folder: Path) -> None:
        """Index ``chunks`` and save the index into ``folder`` (created)."""
        bm25s = _bm25s()
        retriever = bm25s.BM25()
        retriever.index(_tokenize([chunk.text for chunk in chunks]), show_progress=False)
        folder.mkdir(parents=True, exist_ok=True)
        retriever.save(str(folder), show_progress=False)
        (folder / IDS_FILE).write_text(json.dumps([chunk.id for chunk in chunks]))

    @classmethod
    def open(cls, folder: Path) -> Bm25Index:
        """Load a saved index (verify the snapshot's manifest first: this trusts the files)."""
        bm25s = _bm25s()

        if not (folder / IDS_FILE).is_file():
            raise IndexNotFoundError(
                f"no BM25 index in {folder}; rebuild the snapshot with retrieval.mode "
                "'bm25' or 'hybrid'"
            )
        ids = json.loads((folder / IDS_FILE).read_text())
        # the score matrix memory-mapped: workers on one host share its pages (read-only use)
        return cls(bm25s.BM25.load(str(folder), mmap=True), ids)

    def query(
        self, text: str, k: int, allowed_ids: set[str] | None = None
    ) -> list[tuple[str, float]]:
        """The ``k`` best chunks for ``text``; ``allowed_ids`` restricts them (filters)."""
        mask = None
        if allowed_ids is not None:
            mask = np.zeros(len(self.ids), dtype=np.float32)
            for identifier in allowed_ids:
                if identifier in self._position:
                    mask[self._position[identifier]] = 1.0
            if not mask.any():
                return []
        tokens = _tokenize([text])
        if not tokens.vocab:
            return []  # only stopwords or punctuation: nothing to match
        scores = self.scores(tokens, mask)
        return [(self.ids[int(doc)], float(scores[doc])) for doc in best(scores, k)]

    def scores(self, tokens: object, mask: np.ndarray | None = None) -> np.ndarray:
        """Every chunk's BM25 score for one tokenized query (0 where no word matched).

        ``BM25.retrieve`` is not used: it builds progress bars even when hidden (~0.4 ms per
        query) and ranks every chunk, matched or not (see ``best``).
        """
        retriever = self._retriever
        words = _bm25s().tokenization.convert_tokenized_to_string_list(tokens)[0]
        ids = retriever.get_tokens_ids(words)  # words the corpus never had are left out
        if not ids:
            return np.zeros(len(self.ids), dtype=np.float32)
        return retriever.get_scores_from_ids(ids, weight_mask=mask)


def best(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest positive ``scores``, best first; ties by position.

    Only chunks that matched a word are ranked: ``np.argpartition`` over every chunk's score
    (bm25s's top-k) slows down about twentyfold on an array that is mostly zeros, which is what
    any query's scores are (22 ms against 1 ms at 100k chunks, numpy 2.4).
    """
    matched = np.flatnonzero(scores > 0)
    if len(matched) > k:
        matched = matched[np.argpartition(scores[matched], -k)[-k:]]
    return matched[np.lexsort((matched, -scores[matched]))]
