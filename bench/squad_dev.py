"""SQuAD v1.1 dev as paragraph retrieval: every retrieval mode, through the product's build.

Usage: python -m bench.squad_dev [--data ../shared/data/squad_v1.1/dev-v1.1.json]
                                 [--cache .rag-model/bench-cache] [--weights 0.5]
All 2,067 paragraphs are the documents (read from ../shared, written to a temporary JSONL and
ingested, chunked, embedded and indexed by ``build_snapshot``, never copied into the project);
all 10,570 questions are the queries, each with its own paragraph as the one relevant document.
Prints nDCG@10, Recall@1/5/20 and MRR per mode (ranx; a document ranks where its first chunk
does), with the median ``pipeline.answer`` latency at one thread. Vectors are cached
(``bench.retrieval_data``): ``python -m bench.retrieval_data warm --dataset squad`` fills the
cache ahead.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from bench.retrieval_data import (
    cached_embedder,
    evaluate_modes,
    load_squad,
    print_table,
    rescoring_modes,
    select_modes,
    shared_data,
)
from rag_model.build import build_snapshot
from rag_model.config import EMBEDDING_BACKENDS, RagConfig

METRICS = ("ndcg@10", "recall@1", "recall@5", "recall@20", "mrr")
DEPTH = 50  # chunks per question: ~1.4 chunks per paragraph, so ~35 paragraphs remain
DEFAULT_MODE = "hybrid weighted (0.5)"  # RagConfig()'s retrieval before this benchmark


@click.command()
@click.option("--data", help="dev-v1.1.json [../shared/data/squad_v1.1/dev-v1.1.json]")
@click.option("--cache", default=".rag-model/bench-cache", show_default=True)
@click.option("--backend", type=click.Choice(EMBEDDING_BACKENDS), default="onnx", show_default=True)
@click.option("--threads", default=2, show_default=True, help="encoder threads for the build")
@click.option("--weights", default="0.5", show_default=True, help="comma-separated")
@click.option("--sentence-depth", default=20, show_default=True)
@click.option("--latency-questions", default=200, show_default=True)
@click.option(
    "--only",
    default="",
    help="modes to run: comma-separated substrings of their labels, or =LABEL for one exactly",
)
def main(
    data: str | None,
    cache: str,
    backend: str,
    threads: int,
    weights: str,
    sentence_depth: int,
    latency_questions: int,
    only: str,
) -> None:
    """Print the SQuAD dev table."""
    config = RagConfig.from_dict({"embedding": {"backend": backend}})
    source = Path(data) if data else shared_data("squad_v1.1/dev-v1.1.json")
    embedder = cached_embedder(config, Path(cache), threads)
    modes = rescoring_modes([float(w) for w in weights.split(",")], sentence_depth)
    if only:
        modes = select_modes(modes, only)
    with tempfile.TemporaryDirectory() as tmp:
        bench = load_squad(source, Path(tmp))
        data_file, snapshot = Path(tmp) / "squad-dev.jsonl", Path(tmp) / "snapshot"
        built = build_snapshot(config, data_file, snapshot, embedder=embedder, corpus=bench.corpus)
        rows = evaluate_modes(
            bench, config, built.snapshot_dir, embedder, modes, DEPTH, METRICS, latency_questions
        )
    print(
        f"SQuAD v1.1 dev: {len(bench.queries)} questions, {built.document_count} paragraphs -> "
        f"{built.chunk_count} chunks (default chunking), backend {backend}; {DEPTH} chunks per "
        f"question; latency over {latency_questions} questions\n"
    )
    print_table(rows, METRICS, DEFAULT_MODE)


if __name__ == "__main__":
    main()
