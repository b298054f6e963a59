"""RagPipeline: question -> embed -> retrieve from the Chroma snapshot -> generate an answer."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag_model.chroma_server import open_index
from rag_model.config import RagConfig
from rag_model.documents import RetrievedChunk
from rag_model.embedders import CachingEmbedder, Embedder, make_embedder
from rag_model.errors import IntegrityError
from rag_model.generation import Generation
from rag_model.generators import Generator, make_generator
from rag_model.index import ChromaIndex
from rag_model.query import Query, check_question
from rag_model.rerank import CrossEncoderReranker, make_reranker
from rag_model.retrieval import Retriever
from rag_model.tracing import CHAIN, EMBEDDING, content, is_tracing_enabled, span


@dataclass(frozen=True)
class Answer:
    """What the pipeline returns for one question."""

    question: str
    answer: str
    sources: list[RetrievedChunk]
    citations: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    confidence: float | None = None
    usage: dict[str, int] | None = None  # the generator's token counts, when it has them

    def to_dict(self, include_sources: bool = True) -> dict[str, Any]:
        """JSON-ready form: answer, citations, sources (id, document_id, text, score, metadata)."""
        data: dict[str, Any] = {"answer": self.answer, "citations": list(self.citations)}
        if self.confidence is not None:
            data["confidence"] = self.confidence
        if include_sources:
            data["sources"] = [source.to_dict() for source in self.sources]
        data["timings"] = {name: round(ms, 3) for name, ms in self.timings.items()}
        return data


class RagPipeline:
    """The pure RAG pipeline over a verified Chroma snapshot.

    Example:
        >>> pipeline = RagPipeline.from_snapshot(RagConfig(), "build/snapshot")
        >>> pipeline.answer("When did the Normans conquer England?", k=3).answer
        'In 1066 ... [1]'
    """

    def __init__(
        self,
        config: RagConfig,
        index: ChromaIndex,
        embedder: Embedder,
        generator: Generator,
        reranker: CrossEncoderReranker | None = None,
    ) -> None:
        if index.manifest.get("embedder") != config.embedding.model:
            raise IntegrityError(
                f"the index was built with embedder {index.manifest.get('embedder')!r} but the "
                f"config names {config.embedding.model!r}; rebuild the index with this config"
            )
        self.config = config
        self.index = index
        self.embedder = embedder
        self.generator = generator
        lexical = index.lexical() if config.retrieval.mode != "dense" else None
        retrieval = config.retrieval
        wants_sentences = retrieval.sentence_weight > 0 or retrieval.search_unit != "chunk"
        sentences = index.sentence_vectors() if wants_sentences else None
        self.retriever = Retriever(retrieval, index, lexical, sentences, reranker)

    @classmethod
    def from_snapshot(
        cls,
        config: RagConfig,
        snapshot_dir: str | Path,
        embedder_dir: str | Path | None = None,
        threads: int | None = None,
        reranker_dir: str | Path | None = None,
    ) -> RagPipeline:
        """Open a snapshot (verified) and build the embedder and generator ``config`` names.

        With ``index.location: server`` the snapshot folder holds no Chroma files and the
        collection on the server is checked against its manifest now. ``reranker_dir``: the
        cross-encoder's files (``retrieval.rerank``), by default its configured ``path``.
        """
        index = open_index(config.index, snapshot_dir)
        return cls.from_index(config, index, embedder_dir, threads, reranker_dir)

    @classmethod
    def from_index(
        cls,
        config: RagConfig,
        index: ChromaIndex,
        embedder_dir: str | Path | None = None,
        threads: int | None = None,
        reranker_dir: str | Path | None = None,
    ) -> RagPipeline:
        """``from_snapshot`` for an index already opened (and so verified)."""
        embedder = make_embedder(
            config.embedding, Path(embedder_dir) if embedder_dir else None, threads=threads
        )
        if config.embedding.query_cache_size:
            embedder = CachingEmbedder(embedder, max_entries=config.embedding.query_cache_size)
        generator = make_generator(config.generation, embedder, index.sentence_vectors())
        return cls(config, index, embedder, generator, make_reranker(config, reranker_dir, threads))

    def warm_up(self) -> None:
        """Load the embedder and open Chroma now rather than on the first question."""
        self.embedder.warm_up()
        self.index.warm_up()

    def retrieve(
        self, question: str, k: int | None = None, where: Mapping[str, Any] | str | None = None
    ) -> list[RetrievedChunk]:
        """The ``k`` chunks most similar to ``question`` (default k from the config).

        Raises:
            QueryError: an empty question, k out of range, or a malformed filter.
        """
        return self._retrieve(self.query(question, k, where))

    def _retrieve(self, query: Query) -> list[RetrievedChunk]:
        vector = None
        if self.retriever.needs_vector:
            with span("rag.embed_query", EMBEDDING) as embedding:
                if is_tracing_enabled():
                    embedding.set_inputs({"texts": [content(query.question)]})
                vector = self.embedder.embed([query.question])[0]
                embedding.set_attribute("model", self.config.embedding.model)
        return self.retriever.retrieve(query.question, vector, query.k, query.filter)

    def answer(
        self, question: str, k: int | None = None, where: Mapping[str, Any] | str | None = None
    ) -> Answer:
        """Retrieve chunks for ``question`` and generate a cited answer.

        Raises:
            QueryError: empty question, k out of range, or a malformed filter.
        """
        return self.answer_many([question], k, where)[0]

    def answer_many(
        self,
        questions: Sequence[str],
        k: int | None = None,
        where: Mapping[str, Any] | str | None = None,
    ) -> list[Answer]:
        """``answer`` for several questions with the same options, encoded and searched together.

        One encoder call and one Chroma query serve the whole batch (micro-batching in the
        server); each answer is the one ``answer`` gives alone. Timings of the shared steps
        are the batch's, and ``batch_size`` says how many shared them.

        Raises:
            QueryError: an empty question, k out of range, or a malformed filter.
        """
        if not questions:
            return []
        options = self.query(questions[0], k, where)  # k and the filter are checked once
        texts, k, where = [check_question(q) for q in questions], options.k, options.filter
        # one trace per call: a batch shares its encoder call and Chroma query (docs/tracing.md)
        with span("rag.answer", CHAIN) as root:
            traced = is_tracing_enabled()
            if traced:
                root.set_inputs(_answer_inputs(texts, k, where))
            answers = self._answer_checked(texts, k, where)
            if traced:
                outputs = [_answer_outputs(answer) for answer in answers]
                root.set_outputs(outputs[0] if len(outputs) == 1 else outputs)
        return answers

    def _answer_checked(
        self, texts: list[str], k: int, where: Mapping[str, Any] | None
    ) -> list[Answer]:
        started = time.perf_counter()
        if self.retriever.needs_vector:
            with span("rag.embed_query", EMBEDDING) as embedding:
                if is_tracing_enabled():
                    embedding.set_inputs({"texts": [content(text) for text in texts]})
                vectors = self.embedder.embed(texts)
                embedding.set_attribute("model", self.config.embedding.model)
                embedding.set_outputs({"vectors": len(vectors), "dimension": vectors.shape[-1]})
        else:
            vectors = None
        embedded = time.perf_counter()
        found = self.retriever.retrieve_many(texts, vectors, k, where)
        retrieved = time.perf_counter()
        shared = {
            "embed_ms": (embedded - started) * 1000,
            "retrieve_ms": (retrieved - embedded) * 1000,
        }
        if len(texts) > 1:
            shared["batch_size"] = float(len(texts))
        answers = []
        for question, sources in zip(texts, found, strict=True):
            began = time.perf_counter()
            generation = self._generate(question, sources)
            generate_ms = (time.perf_counter() - began) * 1000
            answers.append(
                Answer(
                    question=question,
                    answer=generation.text,
                    sources=sources,
                    citations=generation.citations,
                    confidence=generation.confidence,
                    usage=generation.usage,
                    timings={
                        **shared,
                        "generate_ms": generate_ms,
                        "total_ms": shared["embed_ms"] + shared["retrieve_ms"] + generate_ms,
                    },
                )
            )
        return answers

    def _generate(self, question: str, sources: list[RetrievedChunk]) -> Generation:
        with span("rag.generate", self.generator.span_type) as generating:
            if is_tracing_enabled():
                generating.set_attribute("generator", self.config.generation.generator)
                generating.set_inputs(
                    {"question": content(question), "context_ids": [s.id for s in sources]}
                )
            generation = self.generator.generate(question, sources)
            if is_tracing_enabled():
                details = dict(generation.details)
                usage = details.pop("token_usage", None)
                if usage:
                    generating.set_attribute("token_usage", usage)
                generating.set_outputs(
                    {
                        "answer": content(generation.text),
                        "citations": list(generation.citations),
                        **details,
                    }
                )
        return generation

    def answer_stream(
        self, question: str, k: int | None = None, where: Mapping[str, Any] | str | None = None
    ) -> tuple[list[RetrievedChunk], Iterator[str]]:
        """Retrieve now; return the sources and an iterator over the answer's text pieces.

        With the openai generator the pieces arrive as the model produces them.
        """
        query = self.query(question, k, where)
        sources = self._retrieve(query)
        return sources, self.generator.stream(query.question, sources)

    def query(
        self, question: Any, k: Any = None, where: Any = None, include_sources: Any = True
    ) -> Query:
        """``question`` and its options checked and completed (``rag_model.query``).

        ``k=None`` is this version's ``retrieval.k``; ``where`` may be a mapping or JSON text.

        Raises:
            QueryError: naming the field that is wrong.
        """
        return Query.resolve(question, k, where, include_sources, default_k=self.config.retrieval.k)


def _answer_inputs(texts: list[str], k: int, where: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``rag.answer`` span's inputs (text only with content tracing on)."""
    asked: dict[str, Any] = (
        {"question": content(texts[0])}
        if len(texts) == 1
        else {"questions": [content(text) for text in texts]}
    )
    return {**asked, "k": k, "filter": dict(where) if where else None}


def _answer_outputs(answer: Answer) -> dict[str, Any]:
    """The ``rag.answer`` span's outputs: the answer (or its digest) and the cited chunk ids."""
    return {
        "answer": content(answer.answer),
        "citations": list(answer.citations),
        "confidence": answer.confidence,
    }
