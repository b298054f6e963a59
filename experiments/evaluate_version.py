"""Entry point ``evaluate``: evaluate a registered version, report it, tag it with the result."""

from __future__ import annotations

import click

from evaluation.dataset import EvalSet
from evaluation.runner import Judge
from experiments.options import eval_options, load_eval, make_judge, predict_with_option
from experiments.params import model_name_option, option
from experiments.runs import failures_logged, print_metrics
from rag_model.packaging.registry import CANDIDATE


def evaluate_version(
    model_name: str,
    version: str,
    eval_set: EvalSet,
    judge: Judge | None = None,
    progress: bool = True,
    predict_with: str = "local",
) -> tuple[str, str, dict[str, float]]:
    """Evaluate ``version`` (a number or an alias) of ``model_name`` in a new run.

    With ``predict_with="spark"`` the answers come from the registered model scored by
    ``mlflow.pyfunc.spark_udf`` (``rag_spark.scoring``); the metrics are computed here as for
    ``local``, except that there are no latency metrics.

    Returns:
        The version number, the evaluation run id and the metrics.

    Raises:
        RegistryError: unknown model, version or alias.
    """
    import mlflow

    from experiments.evaluation_run import publish_evaluation, run_evaluation
    from rag_model.packaging.loading import load_pipeline
    from rag_model.packaging.registry import logged_model_id, resolve_version

    ref = resolve_version(model_name, version)  # fails before a run is started
    predictor = None
    if predict_with == "spark":
        from rag_spark.scoring import spark_predictor
        from rag_spark.session import spark_session

        predictor = spark_predictor(spark_session(), ref.uri)  # Spark is up before the run
    with mlflow.start_run() as run, failures_logged():
        mlflow.set_tags(
            {
                "rag_model.evaluated_model": model_name,
                "rag_model.evaluated_version": ref.version,
                "rag_model.eval_path": eval_set.source,
                "rag_model.predict_with": predict_with,
            }
        )
        pipeline = load_pipeline(ref.uri)  # the config, and the embedder answer metrics use
        mlflow.log_params(pipeline.config.flatten())
        evaluated = run_evaluation(  # linked to the version's own LoggedModel
            pipeline,
            eval_set,
            judge,
            progress,
            predictor,
            model_id=logged_model_id(model_name, ref.version),
            trace_tags={"rag.model_name": model_name, "rag.model_version": ref.version},
        )
        publish_evaluation(
            evaluated,
            eval_set,
            pipeline.config.to_dict(),
            model_name,
            ref.version,
            run.info.run_id,
        )
    return ref.version, run.info.run_id, evaluated.result.metrics


@click.command("evaluate")
@model_name_option
@option("--version", default=CANDIDATE, show_default=True, help="Version number or alias.")
@eval_options
@predict_with_option
def evaluate(
    model_name: str,
    version: str,
    eval_path: str,
    split: str,
    max_questions: int | None,
    judge_base_url: str,
    judge_model: str,
    judge_api_key_env: str,
    predict_with: str,
) -> None:
    """Evaluate a registered version on an eval set; log its report and tag the version."""
    from experiments.errors import friendly_errors

    with friendly_errors():
        eval_set = load_eval(eval_path, split, max_questions)
        judge = make_judge(judge_base_url, judge_model, judge_api_key_env)
        number, run_id, metrics = evaluate_version(
            model_name, version, eval_set, judge, predict_with=predict_with
        )
    click.echo(f"evaluated {model_name} version {number} (run {run_id})")
    print_metrics(metrics)
