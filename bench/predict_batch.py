"""CPU time of N questions answered by one ``predict_rows`` batch against one at a time.

``python -m bench.predict_batch --model-uri models:/rag-model@production`` opens the version
as a server worker does (``rag_model.packaging.version_files``), one encoder thread, and times
the same questions both ways (made unique per round so no cache answers them), median of 3
rounds in alternating order. CPU time (``time.process_time``) rather than wall time, so a busy
machine moves the ratio less.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import click

from rag_model.packaging.rows import predict_rows
from rag_model.packaging.version_files import open_model_dir


@click.command()
@click.option("--model-uri", default="models:/rag-model@production", show_default=True)
@click.option("--eval-path", default="data/sample/eval.jsonl", show_default=True)
@click.option("--rows", default=64, show_default=True, help="questions per batch")
def main(model_uri: str, eval_path: str, rows: int) -> None:
    """Print the median CPU seconds of a batch and of single-question calls, and their ratio."""
    # one encoder thread, as each server worker runs (the onnx session reads it when created)
    os.environ["OMP_NUM_THREADS"] = "1"
    import mlflow.artifacts

    from rag_model.packaging.registry import resolve_model_uri

    ref = resolve_model_uri(model_uri)
    folder = Path(mlflow.artifacts.download_artifacts(ref.uri if ref else model_uri))
    pipeline = open_model_dir(folder, verify=False)
    pipeline.warm_up()
    pipeline.answer("warm-up question")
    with open(eval_path, encoding="utf-8") as lines:
        questions = [json.loads(line)["question"] for line in lines][:rows]
    seconds: dict[str, list[float]] = {"batch": [], "one at a time": []}
    for round_ in range(3):
        order = ["batch", "one at a time"] if round_ % 2 == 0 else ["one at a time", "batch"]
        for mode in order:
            asked = [f"{question} ({mode} {round_})" for question in questions]
            started = time.process_time()
            if mode == "batch":
                predict_rows(pipeline, asked, {})
            else:
                for question in asked:
                    predict_rows(pipeline, [question], {})
            seconds[mode].append(time.process_time() - started)
    batch, single = (statistics.median(seconds[m]) for m in ("batch", "one at a time"))
    click.echo(
        f"{len(questions)} questions, CPU seconds (median of 3, alternating): batch {batch:.2f}, "
        f"one at a time {single:.2f}, ratio {single / batch:.2f}x"
    )


if __name__ == "__main__":
    main()
