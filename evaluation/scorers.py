"""Every evaluation metric as an MLflow GenAI scorer (``mlflow.genai.scorer``).

A scorer reads one question's ``outputs`` (what ``evaluation.genai``'s ``predict_fn`` returns:
answer, sources, document ranking) and ``expectations`` (reference answers, relevant ids,
reference contexts) and returns one ``Feedback`` per metric, named as the metric is on the run.
A metric that does not apply to the question (no relevant ids, no reference answers) gives no
feedback at all rather than a NaN, which an assessment cannot hold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from mlflow.entities import AssessmentSource, AssessmentSourceType, Feedback
from mlflow.genai.scorers import Scorer, scorer

from evaluation.answer_metrics import AnswerCase, OfflineAnswerMetrics
from evaluation.retrieval_metrics import retrieval_scores
from evaluation.runner import Judge

CODE = AssessmentSourceType.CODE


def case_of(inputs: Mapping[str, Any], outputs: Mapping[str, Any], expected: Mapping) -> AnswerCase:
    """The ``AnswerCase`` of one evaluated question."""
    return AnswerCase(
        question=inputs["question"],
        answer=outputs["answer"],
        retrieved_contexts=[source["text"] for source in outputs["sources"]],
        reference_answers=list(expected.get("reference_answers") or []),
        reference_contexts=list(expected.get("reference_contexts") or []),
    )


def feedbacks(scores: Mapping[str, float], source: AssessmentSource) -> list[Feedback]:
    """One feedback per applicable score (NaN scores are left out)."""
    return [
        Feedback(name=name, value=float(value), source=source)
        for name, value in scores.items()
        if not math.isnan(value)
    ]


def make_scorers(
    offline: OfflineAnswerMetrics,
    k: int,
    judge: Judge | None = None,
    guard: AbstractContextManager[Any] | None = None,
) -> list[Scorer]:
    """The scorers of an evaluation at the model's ``k`` (with ``judge``: the LLM ones too).

    ``guard`` is held while a scorer computes (``evaluation.genai`` shares it with
    ``predict_fn`` so that scoring one question never runs beside the timed answer of the next).
    """
    guard = guard or nullcontext()

    @scorer(name="retrieval")
    def retrieval(outputs: dict, expectations: dict) -> list[Feedback]:
        """Hit rate, recall, MRR at k; nDCG and MAP at 10: ranx on documents (one question)."""
        relevant = list(expectations.get("relevant_ids") or [])
        if not relevant:
            return []
        with guard:
            scores = retrieval_scores([outputs["ranking"]], [relevant], k).per_question[0]
        return feedbacks(scores, AssessmentSource(CODE, "ranx"))

    @scorer(name="contains_reference")
    def containment(inputs: dict, outputs: dict, expectations: dict) -> list[Feedback]:
        """Does the answer contain a reference answer (SQuAD normalisation)."""
        with guard:
            score = offline.containment(case_of(inputs, outputs, expectations))
        return feedbacks({"contains_reference": score}, AssessmentSource(CODE, "squad"))

    @scorer(name="answer_similarity")
    def answer_similarity(inputs: dict, outputs: dict, expectations: dict) -> list[Feedback]:
        """Exact match (ragas), string presence, ROUGE-L, semantic similarity (best reference)."""
        with guard:
            scores = offline.answer_scores(case_of(inputs, outputs, expectations))
        return feedbacks(scores, AssessmentSource(CODE, "ragas"))

    @scorer(name="context_coverage")
    def context_coverage(inputs: dict, outputs: dict, expectations: dict) -> list[Feedback]:
        """Context recall and precision as coverage of the reference contexts."""
        with guard:
            scores = offline.context_scores(case_of(inputs, outputs, expectations))
        return feedbacks(scores, AssessmentSource(CODE, "coverage"))

    scorers = [retrieval, containment, answer_similarity, context_coverage]
    if judge is not None:
        model = getattr(judge, "model", "judge")

        @scorer(name="llm_judge")
        def llm_judge(inputs: dict, outputs: dict, expectations: dict) -> list[Feedback]:
            """Faithfulness (ragas), answer relevancy, context precision by the judge LLM."""
            scores = judge.score(case_of(inputs, outputs, expectations))
            return feedbacks(scores, AssessmentSource(AssessmentSourceType.LLM_JUDGE, model))

        scorers.append(llm_judge)
    return scorers
