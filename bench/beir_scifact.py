"""SciFact (BEIR) retrieval quality of every mode next to the published figures, with ranx.

Usage: python -m bench.beir_scifact [--data ../shared/data/scifact] [--cache DIR]
                                    [--backend torch|onnx|onnx-int8] [--weights 0.5]
                                    [--throughput]
Reads the corpus from ../shared (CC BY-NC: never copied into the project), ingests, chunks,
embeds and indexes it with the product's own ``build_snapshot`` (vectors cached through
``bench.retrieval_data``: ``python -m bench.retrieval_data warm --dataset scifact`` fills the
cache ahead), runs the 300 test queries through every retrieval mode (with and without
sentence re-scoring, and the parent-document variants), ranks a document where its first chunk
ranks and prints nDCG@10 and Recall@100 per mode with the median ``pipeline.answer`` latency
at one thread; then BM25 over whole documents (what chunking costs BM25). ``--throughput``
also times the product's embedding path against the raw SentenceTransformer.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click

from bench.retrieval_data import (
    Benchmark,
    LazySentenceVectors,
    cached_embedder,
    evaluate_modes,
    evaluate_run,
    load_scifact,
    print_table,
    rescoring_modes,
    select_modes,
    shared_data,
)
from rag_model.build import build_snapshot
from rag_model.chunking import chunk_documents
from rag_model.config import EMBEDDING_BACKENDS, RagConfig
from rag_model.documents import Chunk
from rag_model.embedders import make_embedder
from rag_model.lexical import Bm25Index

PUBLISHED = {"bm25": "0.665 (BEIR paper, BM25)", "dense": "0.645 (MTEB, MiniLM, whole docs)"}
METRICS = ("ndcg@10", "recall@100")
DEPTH = 200  # chunks retrieved per query, so that about 100 documents remain after merging
DEFAULT_MODE = "hybrid weighted (0.5)"  # RagConfig()'s retrieval before this benchmark


@click.command()
@click.option("--data", help="SciFact folder [../shared/data/scifact]")
@click.option("--cache", default=".rag-model/bench-cache", show_default=True)
@click.option("--threads", default=2, show_default=True, help="encoder threads for the build")
@click.option("--backend", type=click.Choice(EMBEDDING_BACKENDS), default="onnx", show_default=True)
@click.option("--weights", default="0.5", show_default=True, help="comma-separated")
@click.option("--sentence-depth", default=20, show_default=True)
@click.option("--latency-questions", default=100, show_default=True)
@click.option(
    "--only",
    default="",
    help="modes to run: comma-separated substrings of their labels, or =LABEL for one exactly",
)
@click.option("--throughput", is_flag=True, help="also time the encoder against the raw one")
@click.option("--queries", "query_count", default=0, help="only the first N test queries (0: all)")
@click.option(
    "--lazy-sentences",
    is_flag=True,
    help="embed only the re-scored candidates' sentences (no sentence-unit modes)",
)
def main(
    data: str | None,
    cache: str,
    threads: int,
    backend: str,
    weights: str,
    sentence_depth: int,
    latency_questions: int,
    only: str,
    throughput: bool,
    query_count: int,
    lazy_sentences: bool,
) -> None:
    """Print the SciFact table."""
    folder = Path(data) if data else shared_data("scifact")
    config = RagConfig.from_dict({"embedding": {"backend": backend}})
    bench = load_scifact(folder)
    if query_count:
        kept = dict(list(bench.queries.items())[:query_count])
        bench = Benchmark(bench.name, bench.corpus, kept, {q: bench.qrels[q] for q in kept})
    embedder = cached_embedder(config, Path(cache), threads)
    modes = rescoring_modes([float(w) for w in weights.split(",")], sentence_depth)
    if only:
        modes = select_modes(modes, only)
    with tempfile.TemporaryDirectory() as tmp:
        data_file, snapshot = folder / "corpus.jsonl", Path(tmp) / "s"
        build_config = (
            config.with_overrides({"index.sentence_vectors": False}) if lazy_sentences else config
        )
        built = build_snapshot(
            build_config, data_file, snapshot, embedder=embedder, corpus=bench.corpus
        )
        lazy = None
        if lazy_sentences:
            chunks = chunk_documents(bench.corpus.documents, config.chunking)
            lazy = LazySentenceVectors({chunk.id: chunk.text for chunk in chunks}, embedder)
        rows = evaluate_modes(
            bench,
            config,
            built.snapshot_dir,
            embedder,
            modes,
            DEPTH,
            METRICS,
            latency_questions,
            lazy,
        )
        # what chunking costs BM25: the same lexical index over whole documents
        whole = [Chunk(d.id, d.id, d.text) for d in bench.corpus.documents]
        Bm25Index.build(whole, Path(tmp) / "whole-bm25")
        lexical = Bm25Index.open(Path(tmp) / "whole-bm25")
        run = {q: dict(lexical.query(text, 100)) for q, text in bench.queries.items()}
        whole_scores = evaluate_run(bench.qrels, run, METRICS)

    print(
        f"SciFact test: {len(bench.queries)} queries, {built.document_count} documents -> "
        f"{built.chunk_count} chunks (default chunking), backend {backend}; {DEPTH} chunks "
        f"per query; latency over {latency_questions} questions\n"
    )
    print_table(rows, METRICS, DEFAULT_MODE)
    print(
        "| bm25, whole documents (not chunked) | "
        + " | ".join(f"{whole_scores[m]:.4f}" for m in METRICS)
        + " | | |"
    )
    print("\npublished nDCG@10: " + "; ".join(f"{k}: {v}" for k, v in PUBLISHED.items()))
    print(f"Chroma + BM25 + sentence index build {built.seconds['index_seconds']:.1f} s")
    if throughput:
        _throughput(config, bench, threads)


def _throughput(config: RagConfig, bench: Benchmark, threads: int, sample_size: int = 512) -> None:
    """The product's embedding path against the raw SentenceTransformer on the same chunks."""
    chunks = chunk_documents(bench.corpus.documents, config.chunking)
    sample = [chunk.text for chunk in chunks[:sample_size]]
    product = make_embedder(config.embedding, threads=threads)
    raw = make_embedder(config.embedding.model_copy(update={"backend": "torch"}), threads=threads)
    raw.warm_up()
    model = raw._model  # noqa: SLF001 - the SentenceTransformer the product wraps
    started = time.perf_counter()
    model.encode(sample, batch_size=config.embedding.batch_size, normalize_embeddings=True)
    raw_rate = len(sample) / (time.perf_counter() - started)
    started = time.perf_counter()
    product.embed(sample, batch_size=config.embedding.batch_size)
    product_rate = len(sample) / (time.perf_counter() - started)
    print(
        f"encoder throughput on {len(sample)} chunks: raw SentenceTransformer (torch) "
        f"{raw_rate:.1f} chunks/s, product path ({config.embedding.backend}) "
        f"{product_rate:.1f} chunks/s (ratio {product_rate / raw_rate:.2f})"
    )


if __name__ == "__main__":
    main()
