"""Answer and context metrics that need no LLM: ragas's offline metrics plus SQuAD containment.

Answers are scored against each reference answer and the best match counts (SQuAD's rule);
citation markers such as ``[2]`` are removed first, since they are not part of the answer text.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from ragas.embeddings.base import BaseRagasEmbedding

from evaluation.metrics import contains_reference
from rag_model.embedders import Embedder

CITATION = re.compile(r"\s*\[\d+\]")
NAN = float("nan")


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
    """ragas's non-LLM metrics, with the pipeline's own embedder for semantic similarity.

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

        with warnings.catch_warnings():
            # ragas 0.4.3 has the non-LLM context metrics only under their old, deprecated
            # import path; ragas.metrics.collections does not offer them yet
            warnings.simplefilter("ignore", DeprecationWarning)
            from ragas.metrics import NonLLMContextPrecisionWithReference, NonLLMContextRecall

        return {
            "exact_match": ExactMatch(),
            "string_present": StringPresence(),
            "rouge_l": RougeScore(rouge_type="rougeL", mode="fmeasure"),
            "semantic_similarity": SemanticSimilarity(embeddings=RagasEmbedding(self.embedder)),
            "context_recall": NonLLMContextRecall(),
            "context_precision": NonLLMContextPrecisionWithReference(),
        }

    def score(self, case: AnswerCase) -> dict[str, float]:
        """Every offline metric for one question."""
        answer = strip_citations(case.answer)
        scores = {"contains_reference": contains_reference(answer, case.reference_answers)}
        for name in ("exact_match", "string_present", "rouge_l", "semantic_similarity"):
            metric = self._metrics[name]
            scores[name] = _best(
                case.reference_answers,
                lambda ref, m=metric: m.score(reference=ref, response=answer).value,
            )
        scores.update(self._context_scores(case))
        return scores

    def _context_scores(self, case: AnswerCase) -> dict[str, float]:
        if not case.reference_contexts or not case.retrieved_contexts:
            return {"context_recall": NAN, "context_precision": NAN}
        from ragas import SingleTurnSample

        sample = SingleTurnSample(
            user_input=case.question,
            retrieved_contexts=case.retrieved_contexts,
            reference_contexts=case.reference_contexts,
        )
        return {
            name: float(self._metrics[name].single_turn_score(sample))
            for name in ("context_recall", "context_precision")
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
