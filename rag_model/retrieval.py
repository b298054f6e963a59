"""Retrieval modes: dense (Chroma), bm25 (lexical) and hybrid (both, fused).

Hybrid takes ``fetch_k`` candidates from each side and fuses them with reciprocal rank fusion
(score = sum of 1 / (rrf_k + rank)) or a weighted sum of min-max normalised scores. Metadata
filters apply to both sides. Every result keeps its per-side scores so a user can see why it
ranked.

After retrieval, two optional stages refine the candidates (each in its own module):
sentence re-scoring (``rag_model.rescoring``) and a cross-encoder (``rag_model.rerank``). With
``search_unit: sentence`` the dense side searches sentences for parent chunks
(``rag_model.parents``); with ``search_unit: both`` the chunk and the sentence searches are two
signals, fused with the lexical one (the dense weight split evenly between them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from rag_model.config import RetrievalConfig
from rag_model.documents import RetrievedChunk
from rag_model.errors import ConfigError
from rag_model.index import ChromaIndex
from rag_model.lexical import Bm25Index
from rag_model.parents import SentenceUnitIndex
from rag_model.rescoring import rescore
from rag_model.sentences import SentenceVectors, split_sentences
from rag_model.tracing import (
    RERANKER,
    RETRIEVER,
    content,
    documents,
    is_tracing_enabled,
    ranked,
    span,
)

if TYPE_CHECKING:
    from rag_model.rerank import CrossEncoderReranker


class Retriever:
    """Retrieves chunks for a question in the configured mode.

    Example:
        >>> retriever = Retriever(config.retrieval, index, index.lexical())
        >>> retriever.retrieve("norman conquest", vector, k=4, where=None)[0].scores
        {'dense': 0.57, 'lexical': 7.2, 'fused': 0.0328}
    """

    def __init__(
        self,
        config: RetrievalConfig,
        index: ChromaIndex,
        lexical: Bm25Index | None = None,
        sentences: SentenceVectors | None = None,
        reranker: CrossEncoderReranker | None = None,
    ) -> None:
        if config.mode != "dense" and lexical is None:
            raise ValueError(f"retrieval mode {config.mode!r} needs the snapshot's BM25 index")
        wants_sentences = [
            name
            for name, wanted in (
                ("retrieval.sentence_weight > 0", config.sentence_weight > 0),
                (f"retrieval.search_unit {config.search_unit!r}", config.search_unit != "chunk"),
            )
            if wanted
        ]
        if wants_sentences and sentences is None:
            raise ConfigError(
                f"{' and '.join(wants_sentences)} need(s) the snapshot's sentence vectors, and "
                "this snapshot has none; rebuild it with index.sentence_vectors: true"
            )
        if config.rerank is not None and reranker is None:
            raise ConfigError(
                "retrieval.rerank is set but no cross-encoder was loaded; log the model with its "
                "rerank files (they are copied into the version) or remove retrieval.rerank"
            )
        self.config = config
        self.index = index
        self.lexical = lexical
        self.sentences = sentences
        self.reranker = reranker
        self.units = (
            SentenceUnitIndex(sentences)
            if config.search_unit != "chunk" and sentences is not None
            else None
        )

    @property
    def needs_vector(self) -> bool:
        """Whether ``retrieve`` needs the question's embedding."""
        return self.config.mode != "bm25" or self.config.sentence_weight > 0

    def depth(self, k: int) -> int:
        """How many candidates to retrieve so that the refining stages can pick ``k``."""
        depth = k
        if self.config.sentence_weight > 0:
            depth = max(depth, self.config.sentence_depth)
        if self.config.rerank is not None:
            depth = max(depth, self.config.rerank.top_n)
        return depth

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
        depth = self.depth(k)
        fetch = depth if mode == "dense" else max(self.config.fetch_k, depth)
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
            found = self._retrieve_many(questions, vectors, k, depth, fetch, where)
            if is_tracing_enabled():
                outputs = [documents(results) for results in found]
                traced.set_outputs(outputs[0] if len(outputs) == 1 else outputs)
        return found

    def _retrieve_many(
        self,
        questions: list[str],
        vectors: np.ndarray | None,
        k: int,
        depth: int,
        fetch: int,
        where: Mapping[str, Any] | None,
    ) -> list[list[RetrievedChunk]]:
        mode = self.config.mode
        if mode == "bm25":
            dense_lists: list[list[RetrievedChunk]] = [[] for _ in questions]
        else:
            assert vectors is not None
            with span("rag.retrieve.dense", RETRIEVER, attributes={"fetch_k": fetch}) as dense:
                dense_lists = self._dense(vectors, fetch, where)
                if is_tracing_enabled():
                    outputs = [ranked(results) for results in dense_lists]
                    dense.set_outputs(outputs[0] if len(outputs) == 1 else outputs)
        sentence_lists: list[list[RetrievedChunk] | None] = [None for _ in questions]
        if self.config.search_unit == "both" and mode != "bm25":
            assert vectors is not None
            with span("rag.retrieve.sentences", RETRIEVER, attributes={"fetch_k": fetch}) as units:
                sentence_lists = list(self._parents(vectors, fetch, where, dense_lists))
                if is_tracing_enabled():
                    outputs = [ranked(results or []) for results in sentence_lists]
                    units.set_outputs(outputs[0] if len(outputs) == 1 else outputs)
        found = []
        for number, (question, dense_hits) in enumerate(zip(questions, dense_lists, strict=True)):
            sentence_hits = sentence_lists[number]
            if mode == "dense" and sentence_hits is not None:
                with span("rag.retrieve.fuse", RERANKER) as fusing:
                    fusing.set_attribute("fusion", self.config.fusion)
                    results = self._fuse(dense_hits, [], sentence_hits)[:depth]
                    if is_tracing_enabled():
                        fusing.set_outputs(ranked(results))
            elif mode == "dense":
                results = [
                    _with_scores(chunk, chunk.score, dense=chunk.score) for chunk in dense_hits
                ]
            elif mode == "bm25":
                results = self._lexical_chunks(self._traced_lexical(question, depth, where))
            else:
                lexical = self._traced_lexical(question, fetch, where)
                with span("rag.retrieve.fuse", RERANKER) as fusing:
                    fusing.set_attribute("fusion", self.config.fusion)
                    results = self._fuse(dense_hits, lexical, sentence_hits)[:depth]
                    if is_tracing_enabled():
                        fusing.set_outputs(ranked(results))
            vector = None if vectors is None else vectors[number]
            results = self._refine(question, vector, results)[:k]
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

    def _dense(
        self, vectors: np.ndarray, k: int, where: Mapping[str, Any] | None
    ) -> list[list[RetrievedChunk]]:
        """Chunks nearest to each vector: from Chroma, or the parents of the nearest sentences."""
        if self.units is None or self.config.search_unit == "both":
            return self.index.query_many(vectors, k, where)
        return self._parents(vectors, k, where)

    def _parents(
        self,
        vectors: np.ndarray,
        k: int,
        where: Mapping[str, Any] | None,
        known: list[list[RetrievedChunk]] | None = None,
    ) -> list[list[RetrievedChunk]]:
        """The parent chunks of the sentences nearest to each vector, scored by the best one.

        ``known``: chunks already read (the chunk search's hits): their text is not read again.
        """
        assert self.units is not None
        allowed = self.index.ids_matching(where) if where else None
        hits = self.units.search(vectors, k, allowed)
        found = {c.id: (c.text, c.metadata) for row in known or [] for c in row}
        missing = [chunk_id for row in hits for chunk_id, _, _ in row if chunk_id not in found]
        if missing:  # one Chroma read per call (most sentence hits are chunk hits too)
            found.update(self.index.get(missing))
        results = []
        for row in hits:
            chunks = []
            for chunk_id, score, position in row:
                if chunk_id not in found:
                    continue
                text, metadata = found[chunk_id]
                sentences = split_sentences(text)
                chunks.append(
                    RetrievedChunk(
                        id=chunk_id,
                        document_id=str(metadata.get("document_id", "")),
                        text=text,
                        score=score,
                        metadata=dict(metadata),
                        best_sentence=sentences[position] if position < len(sentences) else None,
                    )
                )
            results.append(chunks)
        return results

    def _refine(
        self, question: str, vector: np.ndarray | None, results: list[RetrievedChunk]
    ) -> list[RetrievedChunk]:
        """The optional stages after retrieval: sentence re-scoring, then the cross-encoder."""
        weight = self.config.sentence_weight
        if weight > 0 and self.sentences is not None and vector is not None:
            depth = self.config.sentence_depth
            with span("rag.retrieve.rescore_sentences", RERANKER) as rescoring:
                rescoring.set_attribute("sentence_weight", weight)
                rescoring.set_attribute("sentence_depth", depth)
                top = rescore(results[:depth], vector, self.sentences, weight)
                results = top + results[depth:]
                if is_tracing_enabled():
                    rescoring.set_outputs(ranked(top))
        if self.reranker is not None and self.config.rerank is not None:
            top_n = self.config.rerank.top_n
            with span("rag.retrieve.rerank", RERANKER) as reranking:
                reranking.set_attribute("top_n", top_n)
                top = self.reranker.rerank(question, results[:top_n])
                results = top + results[top_n:]
                if is_tracing_enabled():
                    reranking.set_outputs(ranked(top))
        return results

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
        self,
        dense: list[RetrievedChunk],
        lexical: list[tuple[str, float]],
        sentence: list[RetrievedChunk] | None = None,
    ) -> list[RetrievedChunk]:
        """One ranking from the dense, lexical and (``search_unit: both``) sentence signals."""
        sentence = sentence or []
        # a sentence hit wins over the same chunk from Chroma: it carries its best sentence
        by_id = {chunk.id: chunk for chunk in [*dense, *sentence]}
        lexical_only = [(identifier, s) for identifier, s in lexical if identifier not in by_id]
        by_id.update({chunk.id: chunk for chunk in self._lexical_chunks(lexical_only)})
        dense_scores = {chunk.id: chunk.score for chunk in dense}
        lexical_scores = dict(lexical)
        sentence_scores = {chunk.id: chunk.score for chunk in sentence}
        if self.config.fusion == "rrf":
            rankings = [dense_scores, sentence_scores, lexical_scores]
            fused = _rrf([list(scores) for scores in rankings if scores], self.config.rrf_k)
        else:
            weight = self.config.dense_weight
            if self.config.mode == "dense":
                weight = 1.0  # no lexical side: the chunk and sentence signals share it all
            split = 0.5 if sentence else 1.0  # the dense weight, split between chunk and sentence
            weights = [weight * split, weight * split, 1 - weight]
            fused = {}
            for scores, share in zip(
                (dense_scores, sentence_scores, lexical_scores), weights, strict=True
            ):
                for identifier, value in _min_max(scores).items():
                    fused[identifier] = fused.get(identifier, 0.0) + share * value
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
            if identifier in sentence_scores:
                scores["sentence"] = sentence_scores[identifier]
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
        best_sentence=chunk.best_sentence,
    )
