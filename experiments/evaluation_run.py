"""Evaluate a pipeline inside the active MLflow run, then publish it on a model version.

Two steps because ``main`` registers a version only after its evaluation succeeded: first
``run_evaluation`` (metrics and the dataset input on the run; with a LoggedModel id, through
``mlflow.genai.evaluate`` with a trace per question and the metrics logged on the LoggedModel
against the dataset), then ``publish_evaluation`` (report artifacts on the run, ``eval.*`` tags
on the version: a copy for the registry page and for versions evaluated before LoggedModel
metrics).
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd

from evaluation.dataset import EvalSet
from evaluation.runner import EvalResult, Judge, Predictor, evaluate
from experiments.version_report import REPORT_DIR, report_data, write_report_files
from rag_model.packaging.lifecycle import record_evaluation
from rag_model.pipeline import RagPipeline


@dataclass(frozen=True)
class Evaluated:
    """An evaluation and the digest of the dataset it ran on."""

    result: EvalResult
    digest: str
    k: int


def run_evaluation(
    pipeline: RagPipeline,
    eval_set: EvalSet,
    judge: Judge | None = None,
    progress: bool = True,
    predictor: Predictor | None = None,
    model_id: str | None = None,
    trace_tags: dict[str, str] | None = None,
) -> Evaluated:
    """Evaluate ``pipeline``; log metrics, the recall curve and the dataset input on the run.

    ``predictor`` answers the questions (default: ``pipeline`` in this process). With
    ``model_id`` (the version's LoggedModel) the evaluation runs through
    ``mlflow.genai.evaluate`` (``evaluation.genai``: one trace per question, tagged
    ``rag.source=evaluation`` plus ``trace_tags``, with its assessments) and the metrics are
    logged on that LoggedModel with the dataset, where the promotion gate reads them; without
    it (sweeps) the in-process runner scores the questions and nothing is traced.
    """
    k = pipeline.config.retrieval.k
    dataset = log_dataset(eval_set)
    if model_id is not None:
        from evaluation.genai import evaluate_with_mlflow

        result = evaluate_with_mlflow(
            pipeline,
            eval_set.examples,
            model_id=model_id,
            judge=judge,
            predictor=predictor,
            trace_tags=trace_tags,
        )
        mlflow.log_metrics(result.metrics, model_id=model_id, dataset=dataset)
    else:
        result = evaluate(
            pipeline, eval_set.examples, judge=judge, progress=progress, predictor=predictor
        )
        mlflow.log_metrics(result.metrics)
    for n, recall in result.recall_curve.items():
        mlflow.log_metric("recall_curve", recall, step=n)  # one chartable series in the UI
    return Evaluated(result, dataset.digest, k)


def log_dataset(eval_set: EvalSet) -> mlflow.data.Dataset:
    """Log the eval set as the run's ``evaluation`` input; its digest identifies the set."""
    with warnings.catch_warnings():
        # a local path "can be interpreted in multiple ways": both are the local file
        warnings.filterwarnings("ignore", "The specified dataset source", UserWarning)
        dataset = mlflow.data.from_pandas(
            pd.DataFrame(eval_set.records()), source=eval_set.source, name=eval_set.name
        )
    mlflow.log_input(dataset, context="evaluation")
    return dataset


def publish_evaluation(
    evaluated: Evaluated,
    eval_set: EvalSet,
    config: dict,
    model_name: str,
    version: str | None,
    run_id: str,
    changes: dict | None = None,
) -> None:
    """Log the report files on the run and, for a version, tag it with the evaluation.

    ``changes``: the diff against ``@production`` (``experiments.diff``), shown in the report.
    """
    data = report_data(
        evaluated.result,
        eval_set,
        evaluated.digest,
        config,
        model_name,
        version,
        run_id,
        evaluated.k,
        changes=changes,
    )
    with tempfile.TemporaryDirectory(prefix="rag-model-report-") as tmp:
        write_report_files(data, evaluated.result.rows, Path(tmp))
        mlflow.log_artifacts(tmp, REPORT_DIR)
    if version is not None:
        record_evaluation(
            model_name,
            version,
            evaluated.result.metrics,
            evaluated.digest,
            evaluated.k,
            run_id,
        )
        from mlflow.tracking import MlflowClient

        MlflowClient().set_model_version_tag(
            model_name, version, "eval.dataset_name", eval_set.name
        )
