"""Retrieval quality of each mode on the sample eval set (document-level hit rate and MRR).

Usage: python bench/retrieval_modes.py [--k 4]
Builds one MiniLM snapshot of data/sample (BM25 is always in it) and retrieves with dense, bm25
and hybrid (RRF and weighted) from the same snapshot. Prints a Markdown table.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click

from evaluation.dataset import load_eval_set
from evaluation.retrieval_metrics import retrieval_scores
from rag_model.build import build_snapshot
from rag_model.config import RagConfig
from rag_model.pipeline import RagPipeline

PROJECT = Path(__file__).resolve().parents[1]
MODES = {
    "dense": {"mode": "dense"},
    "bm25": {"mode": "bm25"},
    "hybrid rrf (k=60)": {"mode": "hybrid", "fusion": "rrf"},
    "hybrid weighted (0.5)": {"mode": "hybrid", "fusion": "weighted", "dense_weight": 0.5},
}


@click.command()
@click.option("--k", default=4, show_default=True)
def main(k: int) -> None:
    """Print hit rate@k and MRR@k per retrieval mode."""
    examples = load_eval_set(PROJECT / "data/sample/eval.jsonl").examples
    with tempfile.TemporaryDirectory() as tmp:
        built = build_snapshot(RagConfig(), PROJECT / "data/sample/corpus.jsonl", Path(tmp) / "s")
        print(f"{built.chunk_count} chunks, {len(examples)} questions, k={k}\n")
        print("| mode | hit rate@k | MRR@k | ms/question |\n|---|---|---|---|")
        for label, retrieval in MODES.items():
            config = RagConfig.from_dict({"retrieval": {**retrieval, "k": k}})
            pipeline = RagPipeline.from_snapshot(config, built.snapshot_dir)
            pipeline.warm_up()
            started = time.perf_counter()
            retrieved = [
                [c.document_id for c in pipeline.retrieve(e.question, k=k)] for e in examples
            ]
            elapsed = (time.perf_counter() - started) * 1000 / len(examples)
            scores = retrieval_scores(retrieved, [e.relevant_ids for e in examples], k).means
            print(
                f"| {label} | {scores[f'hit_rate_at_{k}']:.4f} | "
                f"{scores[f'mrr_at_{k}']:.4f} | {elapsed:.1f} |"
            )


if __name__ == "__main__":
    main()
