"""Run an eval set through a pipeline and collect every metric and one row per question."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tqdm.auto import tqdm

from evaluation.answer_metrics import AnswerCase, OfflineAnswerMetrics
from evaluation.dataset import EvalExample
from evaluation.metrics import latency_percentiles
from evaluation.retrieval_metrics import (
    CURVE_DEPTH,
    NDCG_AT,
    retrieval_metric_names,
    retrieval_scores,
)
from rag_model.documents import RetrievedChunk
from rag_model.pipeline import Answer, RagPipeline

# the order questions are judged worst by: missed retrieval first, then poor answers
WORST_ORDER = ("hit_rate", "ndcg_at_10", "contains_reference", "rouge_l")


class Judge(Protocol):
    """LLM-judged metrics for one question (see ``evaluation.judge``)."""

    def score(self, case: AnswerCase) -> dict[str, float]:
        """Metric name -> score in [0, 1]."""
        ...


@dataclass(frozen=True)
class EvalResult:
    """Aggregate metrics (MLflow metric names), one row per question, curve and latencies."""

    metrics: dict[str, float]
    rows: list[dict[str, Any]]
    recall_curve: dict[int, float] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)

    def worst(self, count: int = 10) -> list[dict[str, Any]]:
        """The ``count`` questions that did worst (retrieval misses first)."""

        def badness(row: dict[str, Any]) -> tuple[float, ...]:
            scores = row["scores"]
            return tuple(
                1.0 if math.isnan(scores.get(n, math.nan)) else scores[n] for n in _worst_keys(row)
            )

        return sorted(self.rows, key=badness)[:count]


def _worst_keys(row: dict[str, Any]) -> list[str]:
    return [
        next((name for name in row["scores"] if name.startswith(prefix)), prefix)
        for prefix in WORST_ORDER
    ]


@dataclass(frozen=True)
class Prediction:
    """What the model did for one question: its answer, a deeper document ranking, latency.

    ``ranking`` lists the document ids of a search ``depth`` deep (for nDCG@10 and the recall
    curve); ``latency_ms`` is None where a per-question time has no meaning (batch scoring).
    """

    answer: Answer
    ranking: list[str]
    latency_ms: float | None = None


class Predictor(Protocol):
    """Answers questions for an evaluation: in this process, or on Spark (``rag_spark``)."""

    def __call__(self, questions: Sequence[str], k: int, depth: int) -> list[Prediction]:
        """One prediction per question, answered with ``k`` sources, ranked ``depth`` deep."""
        ...


def predict_in_process(pipeline: RagPipeline, progress: bool = False) -> Predictor:
    """A predictor that asks ``pipeline`` one question at a time and times each answer."""

    def predict(questions: Sequence[str], k: int, depth: int) -> list[Prediction]:
        predictions = []
        for question in tqdm(questions, desc="answering", unit="question", disable=not progress):
            started = time.perf_counter()
            answer = pipeline.answer(question, k=k)
            latency = (time.perf_counter() - started) * 1000
            # one more search, 10 deep, for nDCG/MAP; the question's vector is cached by now,
            # so it costs a Chroma + BM25 query (~1-2 ms), and the answer stays what k serves
            deep = pipeline.retrieve(question, k=depth)
            predictions.append(Prediction(answer, [chunk.document_id for chunk in deep], latency))
        return predictions

    return predict


def evaluate(
    pipeline: RagPipeline,
    examples: Sequence[EvalExample],
    k: int | None = None,
    judge: Judge | None = None,
    progress: bool = False,
    predictor: Predictor | None = None,
) -> EvalResult:
    """Answer every example and score retrieval, answers and latency.

    Retrieval is scored on documents ranked ``max(k, 10)`` deep so nDCG@10 and MAP@10 mean
    what they say; hit rate, recall and MRR are cut at the model's own ``k``. The answers come
    from ``predictor`` (default: ``pipeline`` in this process, where latency is the time of
    ``pipeline.answer``, what ``/v1/query`` does per question). A predictor that reports no
    latencies (Spark batch scoring) gives no ``latency_*`` metrics at all. ``pipeline`` also
    supplies the config's k and the embedder the semantic-similarity metric uses.
    """
    k = k or pipeline.config.retrieval.k
    depth = max(k, NDCG_AT, CURVE_DEPTH)
    offline = OfflineAnswerMetrics(pipeline.embedder)
    if judge is not None and hasattr(judge, "with_embedder"):
        judge = judge.with_embedder(pipeline.embedder)  # answer relevancy embeds questions
    predictor = predictor or predict_in_process(pipeline, progress)
    predictions = predictor([example.question for example in examples], k, depth)
    answer_scores: list[dict[str, float]] = []
    for example, prediction in zip(
        tqdm(examples, desc="scoring", unit="question", disable=not progress),
        predictions,
        strict=True,
    ):
        case = answer_case(example, prediction.answer)
        scores = offline.score(case)
        if judge is not None:
            scores.update(judge.score(case))
        answer_scores.append(scores)

    rankings = [prediction.ranking for prediction in predictions]
    retrieval = retrieval_scores(rankings, [e.relevant_ids for e in examples], k)
    per_question = [{**r, **a} for r, a in zip(retrieval.per_question, answer_scores, strict=True)]
    return assemble(examples, predictions, per_question, k)


def answer_case(example: EvalExample, answer: Answer) -> AnswerCase:
    """What the answer and context metrics of one question are computed on."""
    return AnswerCase(
        question=example.question,
        answer=answer.answer,
        retrieved_contexts=[chunk.text for chunk in answer.sources],
        reference_answers=example.reference_answers,
        reference_contexts=example.reference_contexts,
    )


def assemble(
    examples: Sequence[EvalExample],
    predictions: Sequence[Prediction],
    per_question: Sequence[dict[str, float]],
    k: int,
) -> EvalResult:
    """The result from each question's scores: means (NaN left out), rows, curve, latencies.

    ``per_question`` holds every retrieval and answer score of a question (NaN: not
    applicable); the same assembly serves this module's ``evaluate`` and the MLflow GenAI
    evaluation (``evaluation.genai``), so both report the same numbers.
    """
    retrieval_names = list(retrieval_metric_names(k).values())
    retrieval_means = _means(
        [{n: s.get(n, math.nan) for n in retrieval_names} for s in per_question]
    )
    answers = [{n: v for n, v in s.items() if n not in retrieval_names} for s in per_question]
    curve = retrieval_scores(
        [p.ranking for p in predictions], [e.relevant_ids for e in examples], k
    ).recall_curve
    timed = all(prediction.latency_ms is not None for prediction in predictions)
    latencies = [float(p.latency_ms) for p in predictions if p.latency_ms is not None]
    scores = [
        {**s, **({"latency_ms": p.latency_ms} if timed else {})}
        for s, p in zip(per_question, predictions, strict=True)
    ]
    metrics = {
        **retrieval_means,
        **_means(answers),
        "questions": float(len(examples)),
        **(latency_percentiles(latencies) if timed and latencies else {}),
    }
    rows = [
        _row(example, prediction.answer, prediction.ranking, row_scores)
        for example, prediction, row_scores in zip(examples, predictions, scores, strict=True)
    ]
    return EvalResult(metrics, rows, curve, latencies if timed else [])


def _means(per_question: list[dict[str, float]]) -> dict[str, float]:
    names = dict.fromkeys(name for scores in per_question for name in scores)
    means = {}
    for name in names:
        values = [s[name] for s in per_question if not math.isnan(s.get(name, math.nan))]
        means[name] = sum(values) / len(values) if values else math.nan
    return means


def _row(
    example: EvalExample, answer: Answer, ranking: list[str], scores: dict[str, float]
) -> dict[str, Any]:
    return {
        "id": example.id,
        "question": example.question,
        "answer": answer.answer,
        "reference_answers": example.reference_answers,
        "relevant_ids": example.relevant_ids,
        "sources": [_source(chunk, example.relevant_ids) for chunk in answer.sources],
        "ranked_document_ids": list(dict.fromkeys(ranking)),
        "scores": {name: round(value, 6) for name, value in scores.items()},
    }


def _source(chunk: RetrievedChunk, relevant: list[str]) -> dict[str, Any]:
    return {
        "document_id": chunk.document_id,
        "chunk_id": chunk.id,
        "score": chunk.score,
        "relevant": chunk.document_id in relevant,
        "text": chunk.text,
    }
