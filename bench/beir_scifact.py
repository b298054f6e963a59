"""SciFact (BEIR) retrieval quality of each mode next to the published figures, with ranx.

Usage: python bench/beir_scifact.py [--data ../shared/data/scifact] [--threads 2]
                                    [--backend torch|onnx|onnx-int8]
Reads the corpus from ../shared (CC BY-NC: never copied into the project), ingests and chunks
it with the product's own code, embeds the chunks with the bundled MiniLM (cached under
.rag-model/bench-cache, keyed by the chunk texts), builds the snapshot, runs the 300 test
queries, aggregates chunk hits to documents (max score per document) and prints nDCG@10 and
Recall@100 per mode, plus build throughput against the raw encoder on the same chunks.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from rag_model.chunking import chunk_documents
from rag_model.config import EMBEDDING_BACKENDS, RagConfig
from rag_model.documents import Chunk, corpus_fingerprint
from rag_model.embedders import CachingEmbedder, make_embedder
from rag_model.index import build_index
from rag_model.ingestion import load_documents
from rag_model.lexical import Bm25Index
from rag_model.pipeline import RagPipeline

PUBLISHED = {"bm25": "0.665 (BEIR paper, BM25)", "dense": "0.645 (MTEB, MiniLM, whole docs)"}
MODES = {
    "dense": {"mode": "dense"},
    "bm25": {"mode": "bm25"},
    "hybrid rrf (k=60)": {"mode": "hybrid", "fusion": "rrf"},
    "hybrid weighted (0.5)": {"mode": "hybrid", "fusion": "weighted"},
}
DEPTH = 200  # chunks retrieved per query, so that about 100 documents remain after merging


def load_queries(folder: Path) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """The test queries that have judgements, and the judgements."""
    import json

    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        query, doc, score = line.split("\t")
        qrels.setdefault(query, {})[doc] = int(score)
    queries = {}
    for line in (folder / "queries.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["_id"] in qrels:
            queries[record["_id"]] = record["text"]
    return queries, qrels


@click.command()
@click.option("--data", default="../shared/data/scifact", show_default=True)
@click.option("--cache", default=".rag-model/bench-cache", show_default=True)
@click.option("--chunk-size", default=800, show_default=True)
@click.option("--chunk-overlap", default=100, show_default=True)
@click.option("--threads", default=2, show_default=True, help="encoder threads")
@click.option(
    "--backend",
    type=click.Choice(EMBEDDING_BACKENDS),
    default="torch",
    show_default=True,
    help="encoder backend for chunks and queries",
)
@click.option(
    "--raw-sample", default=512, show_default=True, help="chunks for the throughput check"
)
def main(
    data: str,
    cache: str,
    chunk_size: int,
    chunk_overlap: int,
    threads: int,
    backend: str,
    raw_sample: int,
) -> None:
    """Print the SciFact table."""
    from ranx import Qrels, Run, evaluate

    folder = Path(data)
    config = RagConfig.from_dict(
        {
            "chunking": {"chunk_size": chunk_size, "chunk_overlap": chunk_overlap},
            "embedding": {"backend": backend},
        }
    )
    started = time.perf_counter()
    corpus = load_documents(folder / "corpus.jsonl")
    chunks = chunk_documents(corpus.documents, config.chunking)
    chunk_seconds = time.perf_counter() - started
    texts = [chunk.text for chunk in chunks]
    embedder = make_embedder(config.embedding, threads=threads)
    # torch keeps its original key, so caches written before --backend existed still count
    model_key = embedder.model_id if backend == "torch" else f"{embedder.model_id}:{backend}"
    key = hashlib.sha256("\n\x1f".join([model_key, *texts]).encode()).hexdigest()[:24]
    cached = Path(cache) / f"scifact-{key}.npy"
    if cached.exists():
        vectors, embed_seconds = np.load(cached), float("nan")
    else:
        started = time.perf_counter()
        vectors = embedder.embed(texts, batch_size=config.embedding.batch_size, progress=True)
        embed_seconds = time.perf_counter() - started
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.save(cached, vectors)

    # throughput: the product's embedding path against the raw torch encoder, same chunks
    sample = texts[:raw_sample]
    torch_embedder = make_embedder(
        config.embedding.model_copy(update={"backend": "torch"}), threads=threads
    )
    torch_embedder.warm_up()
    raw_model = torch_embedder._model  # noqa: SLF001 - the SentenceTransformer the product uses
    started = time.perf_counter()
    raw_model.encode(sample, batch_size=config.embedding.batch_size, normalize_embeddings=True)
    raw_rate = len(sample) / (time.perf_counter() - started)
    started = time.perf_counter()
    embedder.embed(sample, batch_size=config.embedding.batch_size)
    product_rate = len(sample) / (time.perf_counter() - started)

    queries, qrels = load_queries(folder)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        build_index(
            chunks,
            vectors,
            Path(tmp) / "snapshot",
            config.index,
            embedder_id=embedder.model_id,
            corpus_fingerprint=corpus_fingerprint(corpus.documents),
        )
        index_seconds = time.perf_counter() - started
        query_ids = list(queries)
        query_vectors = embedder.embed([queries[q] for q in query_ids], batch_size=64)
        rows = []
        for label, retrieval in MODES.items():
            mode_config = config.with_overrides(
                {f"retrieval.{name}": value for name, value in retrieval.items()}
                | {"retrieval.k": DEPTH, "retrieval.fetch_k": DEPTH}
            )
            pipeline = RagPipeline.from_snapshot(mode_config, Path(tmp) / "snapshot")
            pipeline.embedder = CachingEmbedder(embedder)
            run: dict[str, dict[str, float]] = {}
            started = time.perf_counter()
            for query_id, vector in zip(query_ids, query_vectors, strict=True):
                hits = pipeline.retriever.retrieve(queries[query_id], vector, DEPTH)
                documents: dict[str, float] = {}
                for hit in hits:  # a document scores as its best chunk
                    documents[hit.document_id] = max(
                        documents.get(hit.document_id, -1e9), hit.score
                    )
                run[query_id] = documents
            per_query_ms = (time.perf_counter() - started) * 1000 / len(query_ids)
            scores = evaluate(Qrels(qrels), Run(run), ["ndcg@10", "recall@100"])
            rows.append((label, scores["ndcg@10"], scores["recall@100"], per_query_ms))

        # what chunking costs BM25: the same lexical index over whole documents
        whole = [Chunk(d.id, d.id, d.text) for d in corpus.documents]
        Bm25Index.build(whole, Path(tmp) / "whole-bm25")
        lexical = Bm25Index.open(Path(tmp) / "whole-bm25")
        started = time.perf_counter()
        run = {q: dict(lexical.query(queries[q], 100)) for q in query_ids}
        per_query_ms = (time.perf_counter() - started) * 1000 / len(query_ids)
        scores = evaluate(Qrels(qrels), Run(run), ["ndcg@10", "recall@100"])
        rows.append(
            (
                "bm25, whole documents (not chunked)",
                scores["ndcg@10"],
                scores["recall@100"],
                per_query_ms,
            )
        )

    print(
        f"SciFact test: {len(queries)} queries, {len(corpus.documents)} documents -> "
        f"{len(chunks)} chunks (chunk_size {chunk_size}, overlap {chunk_overlap}), "
        f"backend {backend}, {threads} encoder thread(s)\n"
    )
    print("| mode | nDCG@10 | Recall@100 | ms/query | published nDCG@10 |")
    print("|---|---|---|---|---|")
    for label, ndcg, recall, ms in rows:
        print(f"| {label} | {ndcg:.4f} | {recall:.4f} | {ms:.1f} | {PUBLISHED.get(label, '')} |")
    print(
        f"\ningest + chunk {chunk_seconds:.1f} s; embed {embed_seconds:.1f} s "
        f"({len(chunks) / embed_seconds:.1f} chunks/s; nan = cached); Chroma + BM25 index "
        f"{index_seconds:.1f} s"
    )
    print(
        f"encoder throughput on {len(sample)} chunks: raw SentenceTransformer (torch) "
        f"{raw_rate:.1f} chunks/s, product path ({backend}) {product_rate:.1f} chunks/s "
        f"(ratio {product_rate / raw_rate:.2f})"
    )


if __name__ == "__main__":
    main()
