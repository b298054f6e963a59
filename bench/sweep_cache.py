"""Run the same sweep twice with a fresh embedding cache: the second run reuses every vector.

Usage: python bench/sweep_cache.py [--questions 100]
Runs against a temporary SQLite tracking store with the real bundled MiniLM; prints a Markdown
table of wall time, embedding cache hits and misses, and the speed-up of the warm run.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click

PROJECT = Path(__file__).resolve().parents[1]


@click.command()
@click.option("--questions", default=100, show_default=True, help="Eval questions per config.")
@click.option("--chunk-sizes", default="400,800", show_default=True)
@click.option("--ks", default="2,4", show_default=True)
@click.option("--modes", default="dense,hybrid", show_default=True)
def main(questions: int, chunk_sizes: str, ks: str, modes: str) -> None:
    """Print cold-cache vs warm-cache sweep timings."""
    import mlflow

    from evaluation.dataset import load_eval_set
    from experiments.sweep import Grid, parse_list, run_sweep
    from rag_model.config import RagConfig

    grid = Grid(
        strategies=["recursive"],
        chunk_sizes=parse_list(chunk_sizes, "--chunk-sizes", int, 1),
        chunk_overlaps=[100],
        ks=parse_list(ks, "--ks", int, 1),
        modes=parse_list(modes, "--modes"),
    )
    eval_set = load_eval_set(PROJECT / "data/sample/eval.jsonl", limit=questions)
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        mlflow.set_experiment("sweep-cache-bench")
        rows = []
        for label in ("cold cache", "warm cache"):
            started = time.perf_counter()
            result = run_sweep(
                RagConfig(), grid, PROJECT / "data/sample/corpus.jsonl", eval_set,
                cache_path=Path(tmp) / "embeddings.sqlite3", progress=False,
            )  # fmt: skip
            rows.append((label, time.perf_counter() - started, result))
    configs = len(rows[0][2].rows)
    print(f"\n{configs} configurations x {questions} questions, MiniLM, sample corpus\n")
    print("| run | seconds | embedding cache hits | misses | speed-up |\n|---|---|---|---|---|")
    cold = rows[0][1]
    for label, seconds, result in rows:
        print(
            f"| {label} | {seconds:.1f} | {result.cache_hits} | {result.cache_misses} | "
            f"{cold / seconds:.1f}x |"
        )


if __name__ == "__main__":
    main()
