"""Answer generators. The offline default is extractive: it needs no LLM and no key.

A generator gets the question and the retrieved chunks (not a flat prompt, unlike an LLM
client) because the extractive one must know which sentence came from which chunk to cite it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rag_model.config import GenerationConfig
from rag_model.documents import RetrievedChunk
from rag_model.embedders import Embedder
from rag_model.generation import Generation, Generator
from rag_model.llm import OpenAIGenerator
from rag_model.sentences import SentenceVectors, split_sentences
from rag_model.tracing import content, is_tracing_enabled

NO_ANSWER = "I could not find an answer in the indexed documents."


class ExtractiveGenerator(Generator):
    """Answers with the retrieved sentences most similar to the question, each cited.

    Example:
        >>> gen = ExtractiveGenerator(HashEmbedder(), max_sentences=1)
        >>> gen.generate("Who built it?", chunks).text
        'Brunel built the bridge in 1864. [1]'
    """

    def __init__(
        self,
        embedder: Embedder,
        max_sentences: int = 2,
        sentence_vectors: SentenceVectors | None = None,
    ) -> None:
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.sentence_vectors = sentence_vectors  # embedded at build time, when the index has them

    def generate(self, question: str, contexts: Sequence[RetrievedChunk]) -> Generation:
        per_chunk = [split_sentences(chunk.text) for chunk in contexts]
        candidates = [
            (rank, position, sentence)
            for rank, sentences in enumerate(per_chunk)
            for position, sentence in enumerate(sentences)
        ]
        if not candidates:
            return Generation(NO_ANSWER)
        similarity = self._similarities(question, contexts, per_chunk)
        best = np.argsort(-similarity, kind="stable")[: self.max_sentences]
        # keep the reading order of the sources, not the order of the scores
        chosen = sorted((candidates[i] for i in best), key=lambda c: (c[0], c[1]))
        cited = list(dict.fromkeys(contexts[rank].id for rank, _, _ in chosen))
        text = " ".join(f"{sentence} [{rank + 1}]" for rank, _, sentence in chosen)
        details = {}
        if is_tracing_enabled():
            index = {(c[0], c[1]): i for i, c in enumerate(candidates)}
            details = {
                "chosen_sentences": [
                    {
                        "chunk_id": contexts[rank].id,
                        "sentence": content(sentence),
                        "similarity": round(float(similarity[index[rank, position]]), 6),
                    }
                    for rank, position, sentence in chosen
                ],
                "candidates": len(candidates),
            }
        confidence = round(float(similarity[best[0]]), 6)
        return Generation(text, cited, confidence=confidence, details=details)

    def _similarities(
        self, question: str, contexts: Sequence[RetrievedChunk], per_chunk: list[list[str]]
    ) -> np.ndarray:
        """Similarity of every candidate sentence to the question, in candidate order."""
        stored = [
            self.sentence_vectors.for_chunk(chunk.id, len(sentences))
            if self.sentence_vectors is not None and sentences
            else None
            for chunk, sentences in zip(contexts, per_chunk, strict=True)
        ]
        missing = [
            sentence
            for sentences, found in zip(per_chunk, stored, strict=True)
            if found is None
            for sentence in sentences
        ]
        vectors = self.embedder.embed([question, *missing])
        fresh = iter(vectors[1:])
        blocks = [
            found if found is not None else np.array([next(fresh) for _ in sentences])
            for sentences, found in zip(per_chunk, stored, strict=True)
            if sentences
        ]
        return np.vstack(blocks) @ vectors[0]


class EchoGenerator(Generator):
    """Deterministic fake: the first sentence of the best chunk, cited. For tests."""

    def generate(self, question: str, contexts: Sequence[RetrievedChunk]) -> Generation:
        for rank, chunk in enumerate(contexts, start=1):
            sentences = split_sentences(chunk.text)
            if sentences:
                return Generation(f"{sentences[0]} [{rank}]", [chunk.id])
        return Generation(NO_ANSWER)


def make_generator(
    config: GenerationConfig, embedder: Embedder, sentence_vectors: SentenceVectors | None = None
) -> Generator:
    """The generator ``config`` names (extractive: with the index's sentence vectors, if any)."""
    if config.generator == "echo":
        return EchoGenerator()
    if config.generator == "openai":
        return OpenAIGenerator(config)
    return ExtractiveGenerator(embedder, config.max_sentences, sentence_vectors)
