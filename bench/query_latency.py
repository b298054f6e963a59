"""In-process query latency of the default pipeline (MiniLM + Chroma + extractive) per stage.

Usage: python bench/query_latency.py [--questions 100] [--threads 1]
Builds the sample corpus snapshot in a temporary folder, answers the sample eval questions and
prints p50/p95 of each stage in milliseconds as a Markdown table.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
import numpy as np

from evaluation.dataset import load_eval_set
from rag_model.build import build_snapshot
from rag_model.config import RagConfig
from rag_model.pipeline import RagPipeline

PROJECT = Path(__file__).resolve().parents[1]


@click.command()
@click.option("--questions", default=100, show_default=True)
@click.option("--threads", default=1, show_default=True, help="torch threads")
@click.option("--passes", default=2, show_default=True, help="1st pass: cold embedding cache")
def main(questions: int, threads: int, passes: int) -> None:
    """Print p50/p95 latency per stage for the sample eval questions."""
    config = RagConfig()
    examples = load_eval_set(PROJECT / "data/sample/eval.jsonl", limit=questions).examples
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        built = build_snapshot(config, PROJECT / "data/sample/corpus.jsonl", Path(tmp) / "index")
        build_s = time.perf_counter() - started
        pipeline = RagPipeline.from_snapshot(config, built.snapshot_dir, threads=threads)
        pipeline.warm_up()
        pipeline.answer("warm-up")
        runs = [[pipeline.answer(e.question).timings for e in examples] for _ in range(passes)]
    print(
        f"build: {built.chunk_count} chunks in {build_s:.1f} s; "
        f"{len(examples)} questions, torch threads {threads}\n"
    )
    print("| pass | stage | p50 ms | p95 ms |\n|---|---|---|---|")
    for number, timings in enumerate(runs, start=1):
        for stage in ("embed_ms", "retrieve_ms", "generate_ms", "total_ms"):
            values = np.array([t[stage] for t in timings])
            p50, p95 = np.percentile(values, 50), np.percentile(values, 95)
            print(f"| {number} | {stage[:-3]} | {p50:.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
