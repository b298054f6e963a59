"""Entry point ``main``: build the index, log the model, evaluate it, register it as candidate."""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import click

from experiments.params import (
    DEFAULT_MODEL_NAME,
    OptionalInt,
    config_overrides,
    model_name_option,
)
from rag_model.config import HASH_MODEL_ID, RagConfig

DEFAULT_DATA = "data/sample/corpus.jsonl"
DEFAULT_EVAL = "data/sample/eval.jsonl"


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
    eval_path: str | Path,
    model_name: str = DEFAULT_MODEL_NAME,
    progress: bool = True,
) -> MainResult:
    """Build, log, evaluate and register one model version; point ``candidate`` at it.

    Runs inside the active MLflow run (``mlflow run`` starts one) or starts a new one. The
    version is registered only after its evaluation succeeded, so a failed run registers
    nothing and ends FAILED with its error logged as the ``error`` tag.
    """
    import mlflow
    import pandas as pd

    from evaluation.dataset import load_eval_set
    from evaluation.report import write_report
    from evaluation.runner import evaluate
    from rag_model.build import build_snapshot
    from rag_model.packaging.lifecycle import record_evaluation
    from rag_model.packaging.log import log_rag_model
    from rag_model.packaging.registry import CANDIDATE, register_version, set_alias

    examples = load_eval_set(eval_path)  # fail before the expensive build
    with mlflow.start_run() as run:
        try:
            mlflow.log_params(config.flatten())
            mlflow.set_tags(
                {"rag_model.data_path": str(data_path), "rag_model.eval_path": str(eval_path)}
            )
            with tempfile.TemporaryDirectory(prefix="rag-model-build-") as tmp:
                built = build_snapshot(config, data_path, Path(tmp) / "index", progress=progress)
                mlflow.log_metrics(
                    {
                        **built.seconds,
                        "chunk_count": built.chunk_count,
                        "document_count": built.document_count,
                        "index_bytes": built.index_bytes,
                    }
                )
                mlflow.log_dict(built.ingestion_report, "ingestion/report.json")
                info = log_rag_model(config, built.snapshot_dir)

            model = mlflow.pyfunc.load_model(info.model_uri)  # evaluate what will be served
            k = config.retrieval.k

            def answer(question: str) -> tuple[str, list[str]]:
                row = model.predict(pd.DataFrame({"question": [question]}), params={"k": k})[0]
                return row["answer"], [source["document_id"] for source in row["sources"]]

            result = evaluate(answer, examples, k)
            mlflow.log_metrics(result.metrics)
            with warnings.catch_warnings():
                # a local path "can be interpreted in multiple ways": both are the local file
                warnings.filterwarnings("ignore", "The specified dataset source", UserWarning)
                dataset = mlflow.data.from_pandas(
                    pd.DataFrame([e.__dict__ for e in examples]).map(
                        lambda v: json.dumps(v) if isinstance(v, list) else v
                    ),
                    source=str(Path(eval_path).resolve()),
                    name=Path(eval_path).name,
                )
            mlflow.log_input(dataset, context="evaluation")
            with tempfile.TemporaryDirectory(prefix="rag-model-report-") as tmp:
                write_report(
                    result,
                    tmp,
                    title=f"run {run.info.run_id}",
                    facts={
                        "model": info.model_uri,
                        "eval set": f"{eval_path} (digest {dataset.digest})",
                        "data": str(data_path),
                        "config": json.dumps(config.to_dict()),
                    },
                )
                mlflow.log_artifacts(tmp, "evaluation")

            version = register_version(info.model_uri, model_name)
            record_evaluation(
                model_name, version.version, result.metrics, dataset.digest, k, run.info.run_id
            )
            set_alias(
                model_name, CANDIDATE, version.version, reason=f"evaluated in run {run.info.run_id}"
            )
        except Exception as exc:
            mlflow.set_tag("error", f"{type(exc).__name__}: {exc}"[:5000])
            raise
    return MainResult(run.info.run_id, info.model_uri, model_name, version.version, result.metrics)


@click.command("main")
@click.option(
    "--data-path",
    default=DEFAULT_DATA,
    show_default=True,
    help="Folder of .txt/.md files or a .jsonl file (id, text, metadata).",
)
@click.option(
    "--eval-path",
    default=DEFAULT_EVAL,
    show_default=True,
    help="JSONL eval set: question, reference_answers, relevant_ids.",
)
@click.option("--chunk-size", type=OptionalInt(1), default="", help="Override chunking.chunk_size.")
@click.option(
    "--chunk-overlap", type=OptionalInt(0), default="", help="Override chunking.chunk_overlap."
)
@click.option("--k", type=OptionalInt(1), default="", help="Override retrieval.k.")
@model_name_option
@click.option("--config", "config_path", default="", help="YAML file of config overrides.")
@click.option("--fake", is_flag=True, help="Hash embedder + echo generator: a fast smoke run.")
def main(
    data_path: str,
    eval_path: str,
    chunk_size: int | None,
    chunk_overlap: int | None,
    k: int | None,
    model_name: str,
    config_path: str,
    fake: bool,
) -> None:
    """Build, log, evaluate and register a model version as @candidate."""
    from experiments.errors import friendly_errors

    with friendly_errors():
        config = RagConfig.from_yaml(config_path) if config_path else RagConfig()
        if fake:
            config = config.with_overrides(
                {"embedding.model": HASH_MODEL_ID, "generation.generator": "echo"}
            )
        config = config.with_overrides(
            config_overrides(
                **{
                    "chunking.chunk_size": chunk_size,
                    "chunking.chunk_overlap": chunk_overlap,
                    "retrieval.k": k,
                }
            )
        )
        result = run_main(config, data_path, eval_path, model_name)
    click.echo(
        f"registered {result.model_name} version {result.version} as @candidate "
        f"(run {result.run_id})"
    )
    for name, value in sorted(result.metrics.items()):
        click.echo(f"  {name:28s} {value:.4f}")


if __name__ == "__main__":
    main()
