"""Entry point ``main``: build, log, evaluate, register, report, and point ``candidate`` at it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from evaluation.dataset import EvalSet
from evaluation.runner import Judge
from experiments.options import (
    DEFAULT_DATA,
    config_options,
    embedding_cache_option,
    eval_options,
    load_config,
    load_eval,
    make_judge,
    quiet_option,
)
from experiments.params import DEFAULT_MODEL_NAME, model_name_option
from experiments.runs import build_and_log, failures_logged, print_metrics
from rag_model.config import RagConfig
from rag_model.packaging.registry import CANDIDATE


@dataclass(frozen=True)
class MainResult:
    """What the main job produced."""

    run_id: str
    model_uri: str
    model_name: str
    version: str
    metrics: dict[str, float]


def run_main(
    config: RagConfig,
    data_path: str | Path,
    eval_set: EvalSet,
    model_name: str = DEFAULT_MODEL_NAME,
    judge: Judge | None = None,
    progress: bool = True,
    embedding_cache: str | Path | None = None,
) -> MainResult:
    """Build, log, evaluate and register one model version; point ``candidate`` at it.

    Runs inside the active MLflow run (``mlflow run`` starts one) or starts a new one. The
    version is registered only after its evaluation succeeded, and deleted again if writing
    its report or tags fails: a failed run registers nothing and ends FAILED with its error
    logged as the ``error`` tag.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    from experiments.diff import log_production_diff
    from experiments.evaluation_run import publish_evaluation, run_evaluation
    from rag_model.packaging.loading import load_pipeline
    from rag_model.packaging.registry import register_version, set_alias

    with mlflow.start_run() as run, failures_logged():
        run_id = run.info.run_id
        mlflow.set_tag("rag_model.eval_path", eval_set.source)
        info = build_and_log(
            config, data_path, progress, eval_set=eval_set, embedding_cache=embedding_cache
        )
        changes = log_production_diff(model_name, info.model_uri)  # what changed, if any
        pipeline = load_pipeline(info.model_uri)  # evaluate what will be served
        evaluated = run_evaluation(  # a trace per question, metrics on the LoggedModel
            pipeline,
            eval_set,
            judge,
            progress,
            model_id=info.model_id,
            trace_tags={"rag.model_name": model_name},
        )
        version = str(register_version(info.model_uri, model_name).version)
        try:
            if changes is not None:
                client = MlflowClient()
                for key, value in changes.tags().items():
                    client.set_model_version_tag(model_name, version, key, value)
            publish_evaluation(
                evaluated,
                eval_set,
                config.to_dict(),
                model_name,
                version,
                run_id,
                changes=changes.to_dict() if changes is not None else None,
            )
            set_alias(model_name, CANDIDATE, version, reason=f"evaluated in run {run_id}")
        except BaseException:
            MlflowClient().delete_model_version(model_name, version)  # nothing half-written
            raise
    return MainResult(run_id, info.model_uri, model_name, version, evaluated.result.metrics)


@click.command("main")
@click.option(  # a plain option: an empty data path is refused, not defaulted
    "--data-path",
    default=DEFAULT_DATA,
    show_default=True,
    help="Folder of documents or a .jsonl file (id, text, metadata).",
)
@eval_options
@config_options
@embedding_cache_option
@quiet_option
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
    embedding_cache: str,
    quiet: bool,
    model_name: str,
) -> None:
    """Build, log, evaluate and register a model version as @candidate."""
    from experiments.errors import friendly_errors

    with friendly_errors():
        config = load_config(config_path, fake, chunk_size, chunk_overlap, k)
        eval_set = load_eval(eval_path, split, max_questions)
        judge = make_judge(judge_base_url, judge_model, judge_api_key_env)
        result = run_main(
            config, data_path, eval_set, model_name, judge, not quiet, embedding_cache
        )
    click.echo(
        f"registered {result.model_name} version {result.version} as @{CANDIDATE} "
        f"(run {result.run_id})"
    )
    print_metrics(result.metrics)
