"""Entry point ``main``: build, log, evaluate, register, report, and point ``candidate`` at it."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from evaluation.dataset import EvalSet
from evaluation.runner import Judge
from experiments.options import (
    DEFAULT_DATA,
    config_options,
    eval_options,
    load_config,
    load_eval,
    make_judge,
)
from experiments.params import DEFAULT_MODEL_NAME, model_name_option
from rag_model.config import RagConfig
from rag_model.ingestion import Corpus
from rag_model.packaging.registry import CANDIDATE


@dataclass(frozen=True)
class MainResult:
    """What the main job produced."""

    run_id: str
    model_uri: str
    model_name: str
    version: str
    metrics: dict[str, float]


def build_and_log(
    config: RagConfig,
    data_path: str | Path,
    progress: bool = True,
    engine: str = "local",
    eval_set: EvalSet | None = None,
) -> Any:
    """Build the snapshot and log the model into the active run (params, build metrics too).

    With ``eval_set``, the documents are first checked to be the ones it was made for.
    """
    import mlflow

    from rag_model.packaging.log import log_rag_model

    mlflow.log_params(config.flatten())
    mlflow.set_tags({"rag_model.data_path": str(data_path), "rag_model.build_engine": engine})
    corpus = None
    if eval_set is not None:  # before minutes of embedding, not after
        from evaluation.dataset import check_overlap
        from rag_model.ingestion import load_documents

        corpus = load_documents(data_path)
        check_overlap(eval_set, {document.id for document in corpus.documents}, str(data_path))
    with tempfile.TemporaryDirectory(prefix="rag-model-build-") as tmp:
        built = build_with(engine, config, data_path, Path(tmp) / "index", progress, corpus)
        mlflow.log_metrics(
            {
                **built.seconds,
                "chunk_count": built.chunk_count,
                "document_count": built.document_count,
                "index_bytes": built.index_bytes,
            }
        )
        mlflow.log_dict(built.ingestion_report, "ingestion/report.json")
        if config.index.location == "server":  # the model will ship no Chroma files
            from rag_model.publish import publish_snapshot

            published = publish_snapshot(built.snapshot_dir, config.index)
            mlflow.log_metric("publish_seconds", published.seconds)
        return log_rag_model(config, built.snapshot_dir)


def build_with(
    engine: str,
    config: RagConfig,
    data_path: str | Path,
    snapshot_dir: str | Path,
    progress: bool = True,
    corpus: Corpus | None = None,
) -> Any:
    """Build a snapshot in this process (``local``) or on Spark (``spark``): the same files.

    ``corpus``: the documents of ``data_path`` when already read (a local build reuses them).
    """
    if engine == "spark":
        from rag_model.index import check_snapshot_target
        from rag_spark.indexing import build_snapshot_on_spark
        from rag_spark.session import spark_session

        check_snapshot_target(Path(snapshot_dir))  # in a second, before Spark starts
        return build_snapshot_on_spark(spark_session(), config, data_path, snapshot_dir)
    from rag_model.build import build_snapshot

    return build_snapshot(config, data_path, snapshot_dir, progress=progress, corpus=corpus)


def run_main(
    config: RagConfig,
    data_path: str | Path,
    eval_set: EvalSet,
    model_name: str = DEFAULT_MODEL_NAME,
    judge: Judge | None = None,
    progress: bool = True,
) -> MainResult:
    """Build, log, evaluate and register one model version; point ``candidate`` at it.

    Runs inside the active MLflow run (``mlflow run`` starts one) or starts a new one. The
    version is registered only after its evaluation succeeded, and deleted again if writing
    its report or tags fails: a failed run registers nothing and ends FAILED with its error
    logged as the ``error`` tag.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    from experiments.evaluation_run import publish_evaluation, run_evaluation
    from rag_model.packaging.loading import load_pipeline
    from rag_model.packaging.registry import register_version, set_alias

    with mlflow.start_run() as run, failures_logged():
        run_id = run.info.run_id
        mlflow.set_tag("rag_model.eval_path", eval_set.source)
        info = build_and_log(config, data_path, progress, eval_set=eval_set)
        pipeline = load_pipeline(info.model_uri)  # evaluate what will be served
        evaluated = run_evaluation(pipeline, eval_set, judge, progress)
        version = str(register_version(info.model_uri, model_name).version)
        try:
            publish_evaluation(evaluated, eval_set, config.to_dict(), model_name, version, run_id)
            set_alias(model_name, CANDIDATE, version, reason=f"evaluated in run {run_id}")
        except BaseException:
            MlflowClient().delete_model_version(model_name, version)  # nothing half-written
            raise
    return MainResult(run_id, info.model_uri, model_name, version, evaluated.result.metrics)


@contextmanager
def failures_logged() -> Iterator[None]:
    """On an error, tag the active run with it (the run then ends FAILED) and re-raise."""
    try:
        yield
    except BaseException as exc:
        import mlflow

        mlflow.set_tag("error", f"{type(exc).__name__}: {exc}"[:5000])
        raise


def print_metrics(metrics: dict[str, float]) -> None:
    """One aligned line per metric."""
    for name, value in sorted(metrics.items()):
        click.echo(f"  {name:28s} {value:.4f}")


@click.command("main")
@click.option(  # a plain option: an empty data path is refused, not defaulted
    "--data-path",
    default=DEFAULT_DATA,
    show_default=True,
    help="Folder of documents or a .jsonl file (id, text, metadata).",
)
@eval_options
@config_options
@model_name_option
def main(
    data_path: str,
    eval_path: str,
    split: str,
    max_questions: int | None,
    judge_base_url: str,
    judge_model: str,
    judge_api_key_env: str,
    config_path: str,
    chunk_size: int | None,
    chunk_overlap: int | None,
    k: int | None,
    fake: bool,
    model_name: str,
) -> None:
    """Build, log, evaluate and register a model version as @candidate."""
    from experiments.errors import friendly_errors

    with friendly_errors():
        config = load_config(config_path, fake, chunk_size, chunk_overlap, k)
        eval_set = load_eval(eval_path, split, max_questions)
        judge = make_judge(judge_base_url, judge_model, judge_api_key_env)
        result = run_main(config, data_path, eval_set, model_name, judge)
    click.echo(
        f"registered {result.model_name} version {result.version} as @{CANDIDATE} "
        f"(run {result.run_id})"
    )
    print_metrics(result.metrics)
