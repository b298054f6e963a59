"""Batch scoring throughput: mlflow.pyfunc.spark_udf on local Spark against in-process scoring.

Usage: python -m bench.spark_scoring [--questions 356] [--master local[2]] [--partitions 2]
       [--threads 1]

Scores the same questions (the sample eval set, repeated, each repeat made a distinct text so
no query cache answers it) with the same registered model (MiniLM + Chroma + extractive, the
sample corpus; built once and cached under .rag-model/bench-cache/spark_scoring), three ways:

- ``pyfunc.predict``: ``mlflow.pyfunc.load_model(uri).predict`` on one DataFrame (one process);
- ``answer_many``: the loaded model's ``RagPipeline.answer_many`` in batches of 32;
- ``spark_udf``: ``rag_spark.scoring.score_questions`` on a SparkSession, ``--partitions``
  partitions, run twice: the first run starts the Python workers (imports), both load the
  model once per task, as spark_udf does.

In-process figures exclude the model load (timed apart); Spark figures include everything the
job does. Prints a Markdown table.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

PROJECT = Path(__file__).resolve().parents[1]
CACHE = PROJECT / ".rag-model" / "bench-cache" / "spark_scoring"
MODEL_NAME = "rag-model-bench"


def _model_uri() -> str:
    """The sample MiniLM model, registered in a cached SQLite store (built on first use)."""
    import mlflow
    from mlflow import MlflowClient

    CACHE.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{CACHE / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient()
    if client.search_model_versions(f"name = '{MODEL_NAME}'"):
        return f"models:/{MODEL_NAME}/1"
    from rag_model.build import build_snapshot
    from rag_model.config import RagConfig
    from rag_model.packaging.log import log_rag_model

    experiment = client.get_experiment_by_name("bench") or client.get_experiment(
        client.create_experiment("bench", artifact_location=(CACHE / "artifacts").as_uri())
    )
    mlflow.set_experiment(experiment_id=experiment.experiment_id)
    config = RagConfig()
    built = build_snapshot(config, PROJECT / "data/sample/corpus.jsonl", CACHE / "snapshot")
    with mlflow.start_run():
        log_rag_model(config, built.snapshot_dir, registered_model_name=MODEL_NAME)
    return f"models:/{MODEL_NAME}/1"


def _questions(count: int) -> list[str]:
    from evaluation.dataset import load_eval_set

    base = [e.question for e in load_eval_set(PROJECT / "data/sample/eval.jsonl").examples]
    # later repeats get a prefix: a distinct text, so the query cache cannot answer it
    return [
        base[n % len(base)] if n < len(base) else f"Question {n}: {base[n % len(base)]}"
        for n in range(count)
    ]


def _loaded(model_uri: str) -> tuple[object, float]:
    import mlflow

    started = time.perf_counter()
    model = mlflow.pyfunc.load_model(model_uri)
    pipeline = model.unwrap_python_model().pipeline
    pipeline.warm_up()
    pipeline.answer("warm-up question")  # first call pays one-off costs (lazy imports)
    return model, time.perf_counter() - started


@click.command()
@click.option("--questions", default=356, show_default=True, help="Questions to score.")
@click.option("--master", default="local[2]", show_default=True, help="Spark master.")
@click.option("--partitions", default=2, show_default=True, help="Partitions of the questions.")
@click.option("--spark-runs", default=2, show_default=True, help="Spark jobs, one after another.")
@click.option(
    "--threads", default=1, show_default=True, help="torch threads in process (Spark workers: 1)."
)
def main(questions: int, master: str, partitions: int, spark_runs: int, threads: int) -> None:
    """Print questions/s of spark_udf next to in-process pyfunc.predict and answer_many."""
    import pandas as pd
    import torch

    torch.set_num_threads(threads)
    from rag_spark.scoring import score_questions
    from rag_spark.session import spark_session

    model_uri = _model_uri()
    texts = _questions(questions)
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    rows = []

    model, load_s = _loaded(model_uri)
    started = time.perf_counter()
    model.predict(pd.DataFrame({"question": texts}))
    rows.append(
        ("pyfunc.predict, in process", time.perf_counter() - started, f"load {load_s:.1f} s")
    )

    model, load_s = _loaded(model_uri)  # a fresh model: its query cache is empty again
    pipeline = model.unwrap_python_model().pipeline
    started = time.perf_counter()
    for start in range(0, len(texts), 32):
        pipeline.answer_many(texts[start : start + 32])
    rows.append(
        ("answer_many (32), in process", time.perf_counter() - started, f"load {load_s:.1f} s")
    )
    del model, pipeline

    started = time.perf_counter()
    spark = spark_session(master, app_name="rag-model-bench")
    session_s = time.perf_counter() - started
    frame = spark.createDataFrame(pd.DataFrame({"question": texts})).repartition(partitions)
    frame = frame.cache()
    frame.count()
    for run in range(1, spark_runs + 1):
        scored = score_questions(frame, model_uri)
        started = time.perf_counter()
        answers = scored.select("prediction.answer").collect()
        elapsed = time.perf_counter() - started
        assert len(answers) == len(texts)
        note = f"run {run}, {partitions} partitions" + (
            f"; session start {session_s:.1f} s not included" if run == 1 else ""
        )
        rows.append((f"spark_udf, {master}", elapsed, note))
    spark.stop()

    print(
        f"{len(texts)} questions, model {model_uri} (sample corpus, MiniLM torch, hybrid k=4, "
        f"extractive); in-process torch threads: {threads}; Spark workers: 1 thread each; "
        f"load average before: {load_before}\n"
    )
    print("| scoring | seconds | questions/s | notes |\n|---|---|---|---|")
    for name, seconds, note in rows:
        print(f"| {name} | {seconds:.1f} | {len(texts) / seconds:.1f} | {note} |")


if __name__ == "__main__":
    main()
