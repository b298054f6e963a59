"""Parent-document retrieval: search small units (sentences), return their parent chunks.

A chunk's single vector averages everything it says; a sentence's vector says one thing. With
``retrieval.search_unit: sentence`` the dense side searches the snapshot's sentence vectors
(every chunk's sentences, embedded at build time: ``rag_model.sentences``) and returns each
hit's parent chunk, deduplicated, scored by its best sentence. The sentences of a chunk are
stored contiguously, so "best sentence per chunk" is one ``np.maximum.reduceat``.

The search is exact (one matrix product over all sentence vectors, memory-mapped): linear in
the number of sentences, a few milliseconds per question for tens of thousands of sentences
on one core (bench/README.md), and it needs no second Chroma collection.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from rag_model.sentences import SentenceVectors


class SentenceUnitIndex:
    """Exact search over a snapshot's sentence vectors, answering with parent chunk ids.

    Example:
        >>> units = SentenceUnitIndex(index.sentence_vectors())
        >>> units.search(question_vectors, k=4)[0]
        [('3f2a...', 0.71, 2), ...]          # (chunk id, best sentence cosine, its position)
    """

    def __init__(self, store: SentenceVectors) -> None:
        self.store = store
        # chunks with at least one sentence, in storage order, and where each one's rows start
        spans = [(chunk_id, start, count) for chunk_id, (start, count) in store.spans.items()]
        spans = [span for span in spans if span[2] > 0]
        spans.sort(key=lambda span: span[1])
        self.chunk_ids = [chunk_id for chunk_id, _, _ in spans]
        self.starts = np.array([start for _, start, _ in spans], dtype=np.int64)
        self.row_of = {chunk_id: i for i, chunk_id in enumerate(self.chunk_ids)}

    def search(
        self, vectors: np.ndarray, k: int, allowed: Collection[str] | None = None
    ) -> list[list[tuple[str, float, int]]]:
        """For each question vector, the ``k`` best parent chunks: (id, cosine, sentence index).

        ``allowed``: only these chunk ids (a metadata filter's matches); None means all.
        """
        if not self.chunk_ids:
            return [[] for _ in range(len(vectors))]
        similarity = np.asarray(self.store.vectors) @ np.asarray(vectors, dtype=np.float32).T
        best = np.maximum.reduceat(similarity, self.starts, axis=0)  # (chunks, questions)
        if allowed is not None:
            mask = np.full(len(self.chunk_ids), -np.inf, dtype=best.dtype)
            rows = [self.row_of[chunk_id] for chunk_id in allowed if chunk_id in self.row_of]
            mask[rows] = 0.0
            best = best + mask[:, None]
        results = []
        for column in range(best.shape[1]):
            scores = best[:, column]
            take = min(k, len(scores))
            top = np.argpartition(-scores, take - 1)[:take]
            top = top[np.lexsort((top, -scores[top]))]  # best first, ties by storage order
            found = []
            for row in top:
                if not np.isfinite(scores[row]):
                    continue
                start = int(self.starts[row])
                end = int(self.starts[row + 1]) if row + 1 < len(self.starts) else None
                position = int(np.argmax(similarity[start:end, column]))
                found.append((self.chunk_ids[row], float(scores[row]), position))
            results.append(found)
        return results
