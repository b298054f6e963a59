"""Sentence-level re-scoring: a retrieved chunk also scores as its best sentence.

A question often targets one sentence of a long chunk, which the chunk's single vector blurs.
The snapshot already holds every chunk's sentence vectors (``rag_model.sentences``), so each
candidate's best sentence costs one small matrix product and no encoder call. The chunk's own
score and its best sentence's cosine are min-max normalised over the candidates and fused::

    score = (1 - weight) * chunk_norm + weight * sentence_norm

Every result keeps the cosine under ``scores["sentence"]`` and the sentence's text in
``best_sentence`` (for highlighting, and for the extractive generator).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from rag_model.documents import RetrievedChunk
from rag_model.sentences import SentenceVectors, split_sentences


def min_max(values: np.ndarray) -> np.ndarray:
    """``values`` scaled to [0, 1]; all ones when they are all equal (nothing to separate)."""
    if values.size == 0:
        return values
    low, high = float(values.min()), float(values.max())
    if high == low:
        return np.ones_like(values)
    return (values - low) / (high - low)


def best_sentences(
    chunks: Sequence[RetrievedChunk], question_vector: np.ndarray, store: SentenceVectors
) -> list[tuple[int, float] | None]:
    """For each chunk, (index of its best sentence, cosine), or None when it has no vectors."""
    found: list[tuple[int, float] | None] = []
    for chunk in chunks:
        vectors = store.for_chunk(chunk.id)
        if vectors is None or len(vectors) == 0:
            found.append(None)
            continue
        similarity = vectors @ question_vector
        best = int(np.argmax(similarity))
        found.append((best, float(similarity[best])))
    return found


def rescore(
    chunks: Sequence[RetrievedChunk],
    question_vector: np.ndarray,
    store: SentenceVectors,
    weight: float,
) -> list[RetrievedChunk]:
    """``chunks`` re-ranked by their fused chunk and best-sentence scores, best first.

    A chunk without sentence vectors (none in its text) keeps its chunk score and counts as the
    lowest sentence score, so it is ranked, not dropped.
    """
    if not chunks:
        return []
    question_vector = np.asarray(question_vector, dtype=np.float32)
    best = best_sentences(chunks, question_vector, store)
    cosines = np.array([b[1] if b is not None else np.nan for b in best], dtype=np.float64)
    present = ~np.isnan(cosines)
    sentence_norm = np.zeros_like(cosines)  # no sentence: the lowest normalised score
    sentence_norm[present] = min_max(cosines[present])
    chunk_norm = min_max(np.array([chunk.score for chunk in chunks], dtype=np.float64))
    fused = (1 - weight) * chunk_norm + weight * sentence_norm
    order = sorted(range(len(chunks)), key=lambda i: (-fused[i], i))  # stable on ties
    results = []
    for i in order:
        chunk = chunks[i]
        scores = dict(chunk.scores)
        sentence = None
        if best[i] is not None:
            position, cosine = best[i]
            scores["sentence"] = cosine
            sentences = split_sentences(chunk.text)
            sentence = sentences[position] if position < len(sentences) else None
        results.append(replace(chunk, score=float(fused[i]), scores=scores, best_sentence=sentence))
    return results
