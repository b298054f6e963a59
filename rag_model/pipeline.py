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
from rag_model.errors import IntegrityError, QueryError
from rag_model.generators import Generator, make_generator
from rag_model.index import ChromaIndex
from rag_model.retrieval import Retriever


@dataclass(frozen=True)
class Answer:
    """What the pipeline returns for one question."""

    question: str
    answer: str
    sources: list[RetrievedChunk]
    citations: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    confidence: float | None = None

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
        self, config: RagConfig, index: ChromaIndex, embedder: Embedder, generator: Generator
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
        self.retriever = Retriever(config.retrieval, index, lexical)

    @classmethod
    def from_snapshot(
        cls,
        config: RagConfig,
        snapshot_dir: str | Path,
        embedder_dir: str | Path | None = None,
        threads: int | None = None,
    ) -> RagPipeline:
        """Open a snapshot (verified) and build the embedder and generator ``config`` names.

        With ``index.location: server`` the snapshot folder holds no Chroma files and the
        collection on the server is checked against its manifest now.
        """
        return cls.from_index(config, open_index(config.index, snapshot_dir), embedder_dir, threads)

    @classmethod
    def from_index(
        cls,
        config: RagConfig,
        index: ChromaIndex,
        embedder_dir: str | Path | None = None,
        threads: int | None = None,
    ) -> RagPipeline:
        """``from_snapshot`` for an index already opened (and so verified)."""
        embedder = make_embedder(
            config.embedding, Path(embedder_dir) if embedder_dir else None, threads=threads
        )
        if config.embedding.query_cache_size:
            embedder = CachingEmbedder(embedder, max_entries=config.embedding.query_cache_size)
        generator = make_generator(config.generation, embedder, index.sentence_vectors())
        return cls(config, index, embedder, generator)

    def warm_up(self) -> None:
        """Load the embedder and open Chroma now rather than on the first question."""
        self.embedder.warm_up()
        self.index.warm_up()

    def retrieve(
        self, question: str, k: int | None = None, where: Mapping[str, Any] | None = None
    ) -> list[RetrievedChunk]:
        """The ``k`` chunks most similar to ``question`` (default k from the config)."""
        question, k = self._check(question, k, where)
        vector = self.embedder.embed([question])[0] if self.retriever.needs_vector else None
        return self.retriever.retrieve(question, vector, k, where)

    def answer(
        self, question: str, k: int | None = None, where: Mapping[str, Any] | None = None
    ) -> Answer:
        """Retrieve chunks for ``question`` and generate a cited answer.

        Raises:
            QueryError: empty question, k out of range, or a malformed filter.
        """
        return self.answer_many([question], k, where)[0]

    def answer_many(
        self, questions: Sequence[str], k: int | None = None, where: Mapping[str, Any] | None = None
    ) -> list[Answer]:
        """``answer`` for several questions with the same options, encoded and searched together.

        One encoder call and one Chroma query serve the whole batch (micro-batching in the
        server); each answer is the one ``answer`` gives alone. Timings of the shared steps
        are the batch's, and ``batch_size`` says how many shared them.

        Raises:
            QueryError: an empty question, k out of range, or a malformed filter.
        """
        checked = [self._check(question, k, where) for question in questions]
        if not checked:
            return []
        texts, k = [question for question, _ in checked], checked[0][1]
        started = time.perf_counter()
        vectors = self.embedder.embed(texts) if self.retriever.needs_vector else None
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
            generation = self.generator.generate(question, sources)
            generate_ms = (time.perf_counter() - began) * 1000
            answers.append(
                Answer(
                    question=question,
                    answer=generation.text,
                    sources=sources,
                    citations=generation.citations,
                    confidence=generation.confidence,
                    timings={
                        **shared,
                        "generate_ms": generate_ms,
                        "total_ms": shared["embed_ms"] + shared["retrieve_ms"] + generate_ms,
                    },
                )
            )
        return answers

    def answer_stream(
        self, question: str, k: int | None = None, where: Mapping[str, Any] | None = None
    ) -> tuple[list[RetrievedChunk], Iterator[str]]:
        """Retrieve now; return the sources and an iterator over the answer's text pieces.

        With the openai generator the pieces arrive as the model produces them.
        """
        sources = self.retrieve(question, k, where)
        return sources, self.generator.stream(question.strip(), sources)

    def _check(self, question: Any, k: Any, where: Any) -> tuple[str, int]:
        if not isinstance(question, str) or not question.strip():
            raise QueryError("question must be a non-empty string", field="question")
        if k is None:
            k = self.config.retrieval.k
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise QueryError(f"k must be a positive integer, got {k!r}", field="k")
        if where is not None and not isinstance(where, Mapping):
            raise QueryError(
                f'filter must be an object such as {{"title": "Oxygen"}}, got {where!r}',
                field="filter",
            )
        return question.strip(), k
