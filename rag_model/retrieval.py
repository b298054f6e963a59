"""Retrieval modes: dense (Chroma), bm25 (lexical) and hybrid (both, fused).

Hybrid takes ``fetch_k`` candidates from each side and fuses them with reciprocal rank fusion
(score = sum of 1 / (rrf_k + rank)) or a weighted sum of min-max normalised scores. Metadata
filters apply to both sides. Every result keeps its per-side scores so a user can see why it
ranked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rag_model.config import RetrievalConfig
from rag_model.documents import RetrievedChunk
from rag_model.index import ChromaIndex
from rag_model.lexical import Bm25Index
from rag_model.tracing import (
    RERANKER,
    RETRIEVER,
    content,
    documents,
    is_tracing_enabled,
    ranked,
    span,
)


class Retriever:
    """Retrieves chunks for a question in the configured mode.

    Example:
        >>> retriever = Retriever(config.retrieval, index, index.lexical())
        >>> retriever.retrieve("norman conquest", vector, k=4, where=None)[0].scores
        {'dense': 0.57, 'lexical': 7.2, 'fused': 0.0328}
    """

    def __init__(
        self, config: RetrievalConfig, index: ChromaIndex, lexical: Bm25Index | None = None
    ) -> None:
        if config.mode != "dense" and lexical is None:
            raise ValueError(f"retrieval mode {config.mode!r} needs the snapshot's BM25 index")
        self.config = config
        self.index = index
        self.lexical = lexical

    @property
    def needs_vector(self) -> bool:
        """Whether ``retrieve`` needs the question's embedding."""
        return self.config.mode != "bm25"

    def retrieve(
        self,
        question: str,
        vector: np.ndarray | None,
        k: int,
        where: Mapping[str, Any] | None = None,
    ) -> list[RetrievedChunk]:
        """The ``k`` best chunks, highest score first, above ``score_threshold`` if set."""
        vectors = None if vector is None else np.asarray(vector)[None, :]
        return self.retrieve_many([question], vectors, k, where)[0]

    def retrieve_many(
        self,
        questions: list[str],
        vectors: np.ndarray | None,
        k: int,
        where: Mapping[str, Any] | None = None,
    ) -> list[list[RetrievedChunk]]:
        """``retrieve`` for several questions; the dense side is one Chroma query for all.

        Traced as ``rag.retrieve`` (its outputs: the chunks, text included) with children
        ``rag.retrieve.dense`` (the shared Chroma query), ``rag.retrieve.lexical`` and
        ``rag.retrieve.fuse`` (per question), whose outputs are ids and scores only.
        """
        mode = self.config.mode
        fetch = k if mode == "dense" else max(self.config.fetch_k, k)
        with span("rag.retrieve", RETRIEVER) as traced:
            if is_tracing_enabled():
                asked = [content(question) for question in questions]
                traced.set_inputs(
                    {
                        "query": asked[0] if len(asked) == 1 else asked,
                        "k": k,
                        "mode": mode,
                        "fetch_k": fetch,
                        "filter": dict(where) if where else None,
                    }
                )
            found = self._retrieve_many(questions, vectors, k, fetch, where)
            if is_tracing_enabled():
                outputs = [documents(results) for results in found]
                traced.set_outputs(outputs[0] if len(outputs) == 1 else outputs)
        return found

    def _retrieve_many(
        self,
        questions: list[str],
        vectors: np.ndarray | None,
        k: int,
        fetch: int,
        where: Mapping[str, Any] | None,
    ) -> list[list[RetrievedChunk]]:
        mode = self.config.mode
        if mode == "bm25":
            dense_lists: list[list[RetrievedChunk]] = [[] for _ in questions]
        else:
            assert vectors is not None
            with span("rag.retrieve.dense", RETRIEVER, attributes={"fetch_k": fetch}) as dense:
                dense_lists = self.index.query_many(vectors, fetch, where)
                if is_tracing_enabled():
                    outputs = [ranked(results) for results in dense_lists]
                    dense.set_outputs(outputs[0] if len(outputs) == 1 else outputs)
        found = []
        for question, dense_hits in zip(questions, dense_lists, strict=True):
            if mode == "dense":
                results = [
                    _with_scores(chunk, chunk.score, dense=chunk.score) for chunk in dense_hits
                ]
            elif mode == "bm25":
                results = self._lexical_chunks(self._traced_lexical(question, k, where))
            else:
                lexical = self._traced_lexical(question, fetch, where)
                with span("rag.retrieve.fuse", RERANKER) as fusing:
                    fusing.set_attribute("fusion", self.config.fusion)
                    results = self._fuse(dense_hits, lexical)[:k]
                    if is_tracing_enabled():
                        fusing.set_outputs(ranked(results))
            threshold = self.config.score_threshold
            if threshold is not None:
                results = [chunk for chunk in results if chunk.score >= threshold]
            found.append(results)
        return found

    def _traced_lexical(
        self, question: str, k: int, where: Mapping[str, Any] | None
    ) -> list[tuple[str, float]]:
        with span("rag.retrieve.lexical", RETRIEVER, attributes={"fetch_k": k}) as lexical:
            hits = self._lexical_hits(question, k, where)
            if is_tracing_enabled():  # BM25 gives ids and scores; the text comes later
                lexical.set_outputs([{"chunk_id": i, "lexical": round(s, 6)} for i, s in hits])
        return hits

    def _lexical_hits(
        self, question: str, k: int, where: Mapping[str, Any] | None
    ) -> list[tuple[str, float]]:
        assert self.lexical is not None
        allowed = self.index.ids_matching(where) if where else None
        return self.lexical.query(question, k, allowed)

    def _lexical_chunks(self, hits: list[tuple[str, float]]) -> list[RetrievedChunk]:
        found = self.index.get([identifier for identifier, _ in hits])
        return [
            RetrievedChunk(
                id=identifier,
                document_id=str(found[identifier][1].get("document_id", "")),
                text=found[identifier][0],
                score=score,
                metadata=found[identifier][1],
                scores={"lexical": score},
            )
            for identifier, score in hits
            if identifier in found
        ]

    def _fuse(
        self, dense: list[RetrievedChunk], lexical: list[tuple[str, float]]
    ) -> list[RetrievedChunk]:
        by_id = {chunk.id: chunk for chunk in dense}
        lexical_only = [(identifier, s) for identifier, s in lexical if identifier not in by_id]
        by_id.update({chunk.id: chunk for chunk in self._lexical_chunks(lexical_only)})
        dense_scores = {chunk.id: chunk.score for chunk in dense}
        lexical_scores = dict(lexical)
        if self.config.fusion == "rrf":
            fused = _rrf([list(dense_scores), list(lexical_scores)], self.config.rrf_k)
        else:
            weight = self.config.dense_weight
            dense_norm, lexical_norm = _min_max(dense_scores), _min_max(lexical_scores)
            fused = {
                identifier: weight * dense_norm.get(identifier, 0.0)
                + (1 - weight) * lexical_norm.get(identifier, 0.0)
                for identifier in set(dense_norm) | set(lexical_norm)
            }
        ranked = sorted(fused, key=lambda identifier: (-fused[identifier], identifier))
        results = []
        for identifier in ranked:
            if identifier not in by_id:
                continue
            scores = {"fused": fused[identifier]}
            if identifier in dense_scores:
                scores["dense"] = dense_scores[identifier]
            if identifier in lexical_scores:
                scores["lexical"] = lexical_scores[identifier]
            results.append(_with_scores(by_id[identifier], fused[identifier], **scores))
        return results


def _rrf(rankings: list[list[str]], constant: int) -> dict[str, float]:
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, identifier in enumerate(ranking, start=1):
            fused[identifier] = fused.get(identifier, 0.0) + 1.0 / (constant + rank)
    return fused


def _min_max(scores: dict[str, float]) -> dict[str, float]:
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    if high == low:
        return {identifier: 1.0 for identifier in scores}
    return {identifier: (s - low) / (high - low) for identifier, s in scores.items()}


def _with_scores(chunk: RetrievedChunk, score: float, **scores: float) -> RetrievedChunk:
    return RetrievedChunk(
        id=chunk.id,
        document_id=chunk.document_id,
        text=chunk.text,
        score=float(score),
        metadata=chunk.metadata,
        scores={name: float(value) for name, value in scores.items()},
    )
