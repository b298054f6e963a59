"""Evaluate through ``mlflow.genai.evaluate``: a trace per question, every metric a scorer.

``predict_fn`` is the version's pipeline (``pipeline.answer`` timed as today, plus the deeper
document ranking nDCG@10 needs); ``model_id`` is the version's LoggedModel, so every trace is
linked to it and MLflow's evaluation view shows each question with its assessments. Each trace
carries ``rag.source=evaluation`` (served traces carry ``rag.source=serving``), the question's
id and position, and the model name and version when known.

The scores come back from the assessments and are assembled exactly as ``evaluation.runner``
assembles them, so the metrics are the numbers the in-process runner gives.

The eval set goes in as a pandas DataFrame, not a managed ``mlflow.genai.datasets`` dataset:
that store de-duplicates records by their inputs (two questions with the same text would
become one), does not keep our row order, and is a mutable store-level object; the eval set is
logged as the run's ``mlflow.data`` input instead (``experiments.evaluation_run``), whose
digest the gate and the reports already compare.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import SpanType

from evaluation.answer_metrics import OFFLINE_METRICS, OfflineAnswerMetrics
from evaluation.dataset import EvalExample
from evaluation.judge import JUDGE_METRICS, JudgeError
from evaluation.retrieval_metrics import CURVE_DEPTH, NDCG_AT, retrieval_metric_names
from evaluation.runner import EvalResult, Judge, Prediction, Predictor, assemble
from evaluation.scorers import make_scorers
from rag_model.documents import RetrievedChunk
from rag_model.errors import RagError
from rag_model.packaging.mlflow_tracer import replay
from rag_model.pipeline import Answer, RagPipeline
from rag_model.tracing import RecordingTracer, SpanRecord, use_tracer

SOURCE_TAG = "rag.source"
EVALUATION = "evaluation"
QUESTION_ID_TAG = "rag.eval.question_id"
POSITION_TAG = "rag.eval.position"
# MLflow's defaults run 10 predictions and every scorer of a question in parallel threads: on a
# small machine that inflates the per-question latency the gate compares (p95), and the
# pipeline's encoder already uses the cores. One at a time, unless the user chose otherwise.
HARNESS_DEFAULTS = {
    "MLFLOW_GENAI_EVAL_MAX_WORKERS": "1",
    "MLFLOW_GENAI_EVAL_MAX_SCORER_WORKERS": "1",
    # predict_fn is traced here; without this MLflow calls it once more to find out
    "MLFLOW_GENAI_EVAL_SKIP_TRACE_VALIDATION": "true",
}


class EvaluationError(RagError):
    """A scorer failed or MLflow returned no per-question results."""


@contextmanager
def harness_defaults() -> Iterator[None]:
    """``HARNESS_DEFAULTS`` in the environment for the evaluation (a user's values win)."""
    added = [name for name in HARNESS_DEFAULTS if name not in os.environ]
    os.environ.update({name: HARNESS_DEFAULTS[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def prediction_outputs(prediction: Prediction) -> dict[str, Any]:
    """What ``predict_fn`` returns for one question (the trace's outputs; JSON)."""
    answer = prediction.answer
    return {
        "answer": answer.answer,
        "citations": list(answer.citations),
        "sources": [
            {"id": c.id, "document_id": c.document_id, "score": float(c.score), "text": c.text}
            for c in answer.sources
        ],
        "ranking": list(prediction.ranking),
        "latency_ms": prediction.latency_ms,
    }


def prediction_from(question: str, outputs: Mapping[str, Any]) -> Prediction:
    """The ``Prediction`` back from a trace's outputs."""
    sources = [
        RetrievedChunk(s["id"], s["document_id"], s["text"], float(s["score"]))
        for s in outputs["sources"]
    ]
    answer = Answer(question, outputs["answer"], sources, list(outputs.get("citations", [])))
    return Prediction(answer, list(outputs["ranking"]), outputs.get("latency_ms"))


def make_predict_fn(
    pipeline: RagPipeline,
    k: int,
    depth: int,
    guard: AbstractContextManager[Any],
    failures: list[BaseException],
    trace_tags: Mapping[str, deque[dict[str, str]]] | None = None,
) -> Callable[[str], dict[str, Any]]:
    """``predict_fn``: the pipeline's answer (timed) and a ``depth``-deep document ranking.

    ``trace_tags``: per question text, the tags of its traces in the order MLflow asks
    (``tags_in_traces``).

    ``guard`` is held while answering: the scorers hold it too, so the timed answer never
    shares the interpreter with the previous question's scoring (MLflow overlaps the two).
    MLflow records a failing ``predict_fn`` on the row and goes on; the error is also kept in
    ``failures`` so that the evaluation can raise it as it is (a ``QueryError`` stays one).
    """

    @mlflow.trace(name="rag_evaluation_answer", span_type=SpanType.CHAIN)
    def predict(question: str) -> dict[str, Any]:
        if trace_tags is not None and trace_tags.get(question):
            # written with the trace: one write instead of one per tag afterwards
            mlflow.update_current_trace(tags=trace_tags[question].popleft())
        recorded: list[list[SpanRecord]] = []
        with guard:
            try:
                started = time.perf_counter()
                # the pipeline's own spans (embed, retrieve with its steps, generate) are
                # recorded as plain data while it is timed, and become MLflow spans under this
                # trace after: the latency is the answer's, without MLflow's span bookkeeping
                # (live spans made the sample set's p50 16.9 ms against 6.2 ms untraced)
                with use_tracer(RecordingTracer(recorded.append)):
                    answer = pipeline.answer(question, k=k)
                latency = (time.perf_counter() - started) * 1000
                # one more search for nDCG/MAP@10 (the question's vector is cached by now)
                deep = pipeline.retrieve(question, k=depth)
            except BaseException as exc:
                failures.append(exc)
                raise
            finally:
                for spans in recorded:  # the evaluation view shows how each answer was made
                    replay(spans)
        ranking = [chunk.document_id for chunk in deep]
        return prediction_outputs(Prediction(answer, ranking, latency))

    return predict


def tags_in_traces(records: list[dict[str, Any]]) -> dict[str, deque[dict[str, str]]] | None:
    """Move each record's tags into its trace, written with it by ``predict_fn``.

    MLflow sets a record's tags on its trace one write per tag after the prediction; the
    trace's own tags cost nothing more. ``predict_fn`` sees only the question, so the tags wait
    per question text in record order, the order MLflow asks in with one prediction at a time
    (the default here). With more (``MLFLOW_GENAI_EVAL_MAX_WORKERS`` > 1) two records with
    the same question could swap tags: the records keep them (None).
    """
    if os.environ.get("MLFLOW_GENAI_EVAL_MAX_WORKERS", "1").strip() != "1":
        return None
    if os.environ.get("MLFLOW_GENAI_EVAL_SKIP_TRACE_VALIDATION", "true").lower() != "true":
        return None  # MLflow calls predict_fn once more first, to validate its trace
    waiting: dict[str, deque[dict[str, str]]] = {}
    for record in records:
        waiting.setdefault(record["inputs"]["question"], deque()).append(record.pop("tags"))
    return waiting


@contextmanager
def one_write_per_trace() -> Iterator[None]:
    """Write each evaluation trace once, with its spans as its data file, not as span rows.

    With span rows MLflow 3.17 writes every span of a trace as it ends (one transaction per
    span: ~8 per question here) besides the trace; the evaluation view, the assessments and
    ``search_traces`` read the same either way (what span rows add is searching by span
    attributes). The served traces are written the same way (``docs/tracing.md``).
    """
    from mlflow.tracing.provider import _get_trace_exporter, _get_tracer

    _get_tracer(__name__)  # MLflow's tracer provider and exporter, set up now
    exporter = _get_trace_exporter()
    before = getattr(exporter, "_store_supports_log_spans", None)
    if before is None:  # another exporter (OTLP...): left as it is
        yield
        return
    exporter._store_supports_log_spans = False
    try:
        yield
    finally:
        exporter._store_supports_log_spans = before


def eval_records(examples: Sequence[EvalExample], tags: Mapping[str, str]) -> list[dict[str, Any]]:
    """One ``mlflow.genai.evaluate`` row per example: inputs, expectations, trace tags."""
    records = []
    for position, example in enumerate(examples):
        expectations = {
            name: value
            for name, value in (
                ("reference_answers", example.reference_answers),
                ("relevant_ids", example.relevant_ids),
                ("reference_contexts", example.reference_contexts),
            )
            if value
        }
        records.append(
            {
                "inputs": {"question": example.question},
                "expectations": expectations,
                "tags": {
                    **tags,
                    SOURCE_TAG: EVALUATION,
                    QUESTION_ID_TAG: example.id,
                    POSITION_TAG: str(position),
                },
            }
        )
    return records


def evaluate_with_mlflow(
    pipeline: RagPipeline,
    examples: Sequence[EvalExample],
    *,
    model_id: str | None,
    k: int | None = None,
    judge: Judge | None = None,
    predictor: Predictor | None = None,
    trace_tags: Mapping[str, str] | None = None,
) -> EvalResult:
    """Answer and score every example through ``mlflow.genai.evaluate`` in the active run.

    With ``predictor`` (Spark batch scoring) the answers are computed first and handed to
    MLflow as static outputs (a minimal trace per question); otherwise ``pipeline`` answers
    through ``predict_fn``, one traced call per question.

    Raises:
        JudgeError: the LLM judge failed on a question.
        EvaluationError: another scorer failed, or MLflow gave no per-question results.
    """
    k = k or pipeline.config.retrieval.k
    depth = max(k, NDCG_AT, CURVE_DEPTH)
    offline = OfflineAnswerMetrics(pipeline.embedder).load()
    if judge is not None and hasattr(judge, "with_embedder"):
        judge = judge.with_embedder(pipeline.embedder)
    if judge is not None and hasattr(judge, "load"):
        judge = judge.load()
    records = eval_records(examples, trace_tags or {})
    guard = threading.Lock()
    failures: list[BaseException] = []
    predict_fn = None
    if predictor is not None:
        predictions = predictor([example.question for example in examples], k, depth)
        for record, prediction in zip(records, predictions, strict=True):
            record["outputs"] = prediction_outputs(prediction)
    with harness_defaults(), one_write_per_trace():
        if predictor is None:
            tags = tags_in_traces(records)
            predict_fn = make_predict_fn(pipeline, k, depth, guard, failures, tags)
        result = mlflow.genai.evaluate(
            data=pd.DataFrame(records),
            scorers=make_scorers(offline, k, judge, guard),
            predict_fn=predict_fn,
            model_id=model_id,
        )
    if failures:
        raise failures[0]
    frame = result.result_df
    if frame is None or len(frame) != len(examples):
        raise EvaluationError(
            f"mlflow.genai.evaluate returned {0 if frame is None else len(frame)} results for "
            f"{len(examples)} questions (run {result.run_id}); see its traces in the MLflow UI"
        )
    _raise_scorer_errors(frame)
    frame = _in_eval_set_order(frame)
    names = [*retrieval_metric_names(k).values(), *OFFLINE_METRICS]
    if judge is not None:
        names += JUDGE_METRICS
    predictions, per_question = [], []
    for example, (_, row) in zip(examples, frame.iterrows(), strict=True):
        outputs = row["response"]
        if isinstance(outputs, str):
            outputs = json.loads(outputs)
        predictions.append(prediction_from(example.question, outputs))
        per_question.append(_scores(row, names))
    return assemble(examples, predictions, per_question, k)


def _in_eval_set_order(frame: pd.DataFrame) -> pd.DataFrame:
    # MLflow keeps the input order today; the position tag makes sure of it
    positions = [
        tags.get(POSITION_TAG) if isinstance(tags, dict) else None
        for tags in frame.get("tags", pd.Series([None] * len(frame)))
    ]
    if None in positions:
        return frame
    return frame.iloc[sorted(range(len(frame)), key=lambda i: int(positions[i]))]


def _scores(row: pd.Series, names: Sequence[str]) -> dict[str, float]:
    # a metric that did not apply to the question left no assessment: NaN, as in the runner
    scores = {}
    for name in names:
        value = row.get(f"{name}/value")
        scores[name] = float(value) if isinstance(value, int | float) else math.nan
    return scores


def _raise_scorer_errors(frame: pd.DataFrame) -> None:
    for column in frame.columns:
        if not (isinstance(column, str) and column.endswith("/error_message")):
            continue
        errors = frame[column].dropna()
        if len(errors):
            name, message = column.removesuffix("/error_message"), str(errors.iloc[0])
            if name == "llm_judge":
                raise JudgeError(message)
            raise EvaluationError(f"scorer {name!r} failed on {len(errors)} question(s): {message}")
