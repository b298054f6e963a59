"""Answer and context metrics that need no LLM: ragas, SQuAD containment, context coverage.

Answers are scored against each reference answer and the best match counts (SQuAD's rule);
citation markers such as ``[2]`` are removed first, since they are not part of the answer text.
Context recall and precision are ``evaluation.coverage``'s, not ragas's non-LLM ones: those
compare whole strings and read ~0.02 for a quoted sentence inside a long retrieved chunk.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from ragas.embeddings.base import BaseRagasEmbedding

from evaluation.coverage import context_precision, context_recall
from evaluation.metrics import contains_reference
from rag_model.embedders import Embedder

CITATION = re.compile(r"\s*\[\d+\]")
NAN = float("nan")
# every score ``OfflineAnswerMetrics.score`` gives, in its order
OFFLINE_METRICS = (
    "contains_reference",
    "exact_match",
    "string_present",
    "rouge_l",
    "semantic_similarity",
    "context_recall",
    "context_precision",
)


@dataclass(frozen=True)
class AnswerCase:
    """What one question's answer and contexts are scored on."""

    question: str
    answer: str
    retrieved_contexts: list[str]
    reference_answers: list[str]
    reference_contexts: list[str]


def strip_citations(answer: str) -> str:
    """``"In 1066 [1]."`` -> ``"In 1066."``."""
    return CITATION.sub("", answer).strip()


class OfflineAnswerMetrics:
    """Offline answer metrics (ragas, with the pipeline's own embedder), containment, coverage.

    Every score is in [0, 1]; NaN where the case lacks what a metric needs (no reference
    answers, or no reference contexts).
    """

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    @cached_property
    def _metrics(self) -> dict[str, object]:
        from ragas.metrics.collections import (
            ExactMatch,
            RougeScore,
            SemanticSimilarity,
            StringPresence,
        )

        return {
            "exact_match": ExactMatch(),
            "string_present": StringPresence(),
            "rouge_l": RougeScore(rouge_type="rougeL", mode="fmeasure"),
            "semantic_similarity": SemanticSimilarity(embeddings=RagasEmbedding(self.embedder)),
        }

    def load(self) -> OfflineAnswerMetrics:
        """Import and build the metrics now, in this thread.

        MLflow scores in worker threads, where a first import runs under MLflow's import hooks
        (an ImportWarning that the test suite turns into an error).
        """
        # one real call: the metrics import more (rouge, rapidfuzz) on their first score
        self.answer_scores(AnswerCase("warm up", "warm up text", [], ["warm up"], []))
        return self

    def score(self, case: AnswerCase) -> dict[str, float]:
        """Every offline metric for one question."""
        return {
            "contains_reference": self.containment(case),
            **self.answer_scores(case),
            **self.context_scores(case),
        }

    def containment(self, case: AnswerCase) -> float:
        """Does the answer contain a reference answer (SQuAD normalisation)."""
        return contains_reference(strip_citations(case.answer), case.reference_answers)

    def answer_scores(self, case: AnswerCase) -> dict[str, float]:
        """Exact match, string presence, ROUGE-L, semantic similarity (ragas; best reference)."""
        answer = strip_citations(case.answer)
        scores = {}
        for name in ("exact_match", "string_present", "rouge_l", "semantic_similarity"):
            metric = self._metrics[name]
            scores[name] = _best(
                case.reference_answers,
                lambda ref, m=metric: m.score(reference=ref, response=answer).value,
            )
        return scores

    @staticmethod
    def context_scores(case: AnswerCase) -> dict[str, float]:
        """Context recall and precision as coverage (``evaluation.coverage``)."""
        return {
            "context_recall": context_recall(case.reference_contexts, case.retrieved_contexts),
            "context_precision": context_precision(
                case.reference_contexts, case.retrieved_contexts
            ),
        }


def _best(references: Sequence[str], score: Callable[[str], float]) -> float:
    return max((float(score(ref)) for ref in references), default=NAN)


class RagasEmbedding(BaseRagasEmbedding):
    """ragas's embedding interface over a rag-model ``Embedder`` (no second model load)."""

    def __init__(self, embedder: Embedder) -> None:
        super().__init__()
        self._embedder = embedder

    def embed_text(self, text: str, **kwargs: object) -> list[float]:
        return self._embedder.embed([text])[0].tolist()

    async def aembed_text(self, text: str, **kwargs: object) -> list[float]:
        return self.embed_text(text)
