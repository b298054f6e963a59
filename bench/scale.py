"""Scale: the product's snapshot writer and loader at 10k, 100k (1M) chunks, synthetic vectors.

Usage: python -m bench.scale [--chunks 10000,100000] [--queries 200]

Embedding 100k chunks would take hours on 2 cores, so the chunks are synthetic: ~600-character
texts of random words from a 5,000-word vocabulary (so BM25 has realistic postings) and random
unit vectors (384 dimensions, float32). Everything else is the product's own code:
``rag_model.index.build_index`` writes the snapshot (Chroma, BM25, manifest),
``ChromaIndex.open`` verifies it and ``warm_up`` makes the per-process private copy a worker
makes, ``Bm25Index`` builds and opens the lexical index. Each size runs in fresh child
processes, so peak RSS is per step: ``write`` (build the snapshot), ``load`` (what a worker
does: verify every file's sha256, copy, open, first query) and ``query`` (p50/p99 of one client
querying Chroma directly, k=4, then BM25). Bundled mode only; see docs/scale.md for what is not
measured.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

DIMENSION = 384
WORDS = 5_000
WORDS_PER_CHUNK = 90
SEED = 16


def synthetic(count: int):  # noqa: ANN201 - (chunks, vectors)
    """``count`` chunks of random words and random unit vectors (float32)."""
    from rag_model.documents import Chunk

    rng = np.random.default_rng(SEED)
    vocabulary = np.array([f"w{n}x{n * 7919 % 10007}" for n in range(WORDS)])
    words = rng.zipf(1.3, size=(count, WORDS_PER_CHUNK)) % WORDS
    chunks = [
        Chunk(
            id=f"c{i:08d}",
            document_id=f"d{i // 4:07d}",
            text=" ".join(vocabulary[row]),
            metadata={"document_id": f"d{i // 4:07d}", "source": "synthetic"},
        )
        for i, row in enumerate(words)
    ]
    vectors = rng.standard_normal((count, DIMENSION), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return chunks, vectors


def rss_mb() -> float:
    """Peak resident set size of this process, MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_write(count: int, folder: Path) -> dict[str, float]:
    """Build the snapshot of ``count`` synthetic chunks (and, apart, BM25 alone)."""
    from rag_model.config import IndexConfig
    from rag_model.index import build_index
    from rag_model.lexical import Bm25Index

    started = time.perf_counter()
    chunks, vectors = synthetic(count)
    generated = time.perf_counter() - started
    base_rss = rss_mb()
    started = time.perf_counter()
    Bm25Index.build(chunks, folder.parent / "bm25-alone")
    bm25_seconds = time.perf_counter() - started
    bm25_rss = rss_mb() - base_rss
    started = time.perf_counter()
    build_index(
        chunks,
        vectors,
        folder,
        IndexConfig(),
        embedder_id="hash-embedder",  # the config below: log_model and the loader accept it
        corpus_fingerprint="synthetic",
    )
    write_seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return {
        "generate_s": generated,
        "bm25_build_s": bm25_seconds,
        "bm25_build_peak_rss_delta_mb": bm25_rss,
        "write_s": write_seconds,
        "snapshot_mb": size / 1e6,
        "write_peak_rss_mb": rss_mb(),
    }


def step_load(folder: Path, queries: int) -> dict[str, float]:
    """What a worker does: verify, copy and open the snapshot; then time queries."""
    started = time.perf_counter()
    from rag_model.index import ChromaIndex
    from rag_model.lexical import Bm25Index

    imported = time.perf_counter() - started
    started = time.perf_counter()
    index = ChromaIndex.open(folder)  # verifies every file's sha256
    verify = time.perf_counter() - started
    started = time.perf_counter()
    index.warm_up()  # the private copy + Chroma client every worker makes
    copy_open = time.perf_counter() - started
    rng = np.random.default_rng(SEED + 1)
    probes = rng.standard_normal((queries, DIMENSION), dtype=np.float32)
    started = time.perf_counter()
    index.query(probes[0], k=4)
    first = time.perf_counter() - started
    dense = []
    for probe in probes[1:]:
        started = time.perf_counter()
        index.query(probe, k=4)
        dense.append((time.perf_counter() - started) * 1000)
    rss_dense = rss_mb()
    started = time.perf_counter()
    lexical = Bm25Index.open(folder / "bm25")
    bm25_open = time.perf_counter() - started
    words = [f"w{n}x{n * 7919 % 10007}" for n in rng.integers(0, 200, size=(queries, 3))]
    sparse = []
    for n in range(queries):
        started = time.perf_counter()
        lexical.query(" ".join(words[n * 3 : n * 3 + 3]) or "w1x7919", k=4)
        sparse.append((time.perf_counter() - started) * 1000)
    index.close()
    return {
        "import_s": imported,
        "verify_s": verify,
        "copy_open_s": copy_open,
        "first_query_s": first,
        "dense_p50_ms": float(np.percentile(dense, 50)),
        "dense_p99_ms": float(np.percentile(dense, 99)),
        "worker_rss_after_dense_mb": rss_dense,
        "bm25_open_s": bm25_open,
        "bm25_p50_ms": float(np.percentile(sparse, 50)),
        "bm25_p99_ms": float(np.percentile(sparse, 99)),
        "worker_rss_mb": rss_mb(),
    }


def step_log(folder: Path) -> dict[str, float]:
    """log_model of the snapshot into a fresh SQLite store, then a worker's load of it."""
    import mlflow

    from rag_model.config import RagConfig
    from rag_model.packaging.log import log_rag_model
    from rag_model.packaging.version_files import open_model_dir

    store = folder.parent / "mlflow"
    store.mkdir()
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("scale", (store / "a").as_uri()))
    config = RagConfig.from_dict(
        {"embedding": {"model": "hash-embedder"}, "generation": {"generator": "echo"}}
    )
    started = time.perf_counter()
    with mlflow.start_run():
        info = log_rag_model(config, folder)
    logged = time.perf_counter() - started
    model_dir = Path(mlflow.artifacts.download_artifacts(info.model_uri))
    started = time.perf_counter()
    pipeline = open_model_dir(model_dir)  # what a worker does without serving.prepare
    pipeline.answer("w1x7919 w2x15838")
    first_answer = time.perf_counter() - started
    return {"log_model_s": logged, "load_verify_first_answer_s": first_answer}


def child(*args: str) -> dict[str, float]:
    """Run one step in a fresh process (its own peak RSS); its last line is JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise click.ClickException(f"{args}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@click.command()
@click.option("--chunks", default="10000,100000", show_default=True)
@click.option("--queries", default=200, show_default=True)
@click.option("--step", type=click.Choice(["write", "load", "log"]), default=None, hidden=True)
@click.option("--folder", default="", hidden=True)
def main(chunks: str, queries: int, step: str | None, folder: str) -> None:
    """Print the scale table (bundled mode, synthetic vectors)."""
    if step == "write":
        print(json.dumps(step_write(int(chunks), Path(folder))))
        return
    if step == "load":
        print(json.dumps(step_load(Path(folder), queries)))
        return
    if step == "log":
        print(json.dumps(step_log(Path(folder))))
        return
    print(f"load average at start: {os.getloadavg()}", flush=True)
    rows = []
    for count in (int(c) for c in chunks.split(",")):
        with tempfile.TemporaryDirectory(prefix="rag-model-scale-") as tmp:
            snapshot = Path(tmp) / "snapshot"
            written = child("--chunks", str(count), "--step", "write", "--folder", str(snapshot))
            loaded = child("--step", "load", "--folder", str(snapshot), "--queries", str(queries))
            loaded.update(child("--step", "log", "--folder", str(snapshot)))
            rows.append((count, written, loaded))
            print(count, json.dumps({**written, **loaded}), flush=True)
    print(f"load average at end: {os.getloadavg()}")
    columns = [
        ("write s", "write", "write_s"),
        ("snapshot MB", "write", "snapshot_mb"),
        ("write peak RSS MB", "write", "write_peak_rss_mb"),
        ("BM25 build s", "write", "bm25_build_s"),
        ("BM25 build +RSS MB", "write", "bm25_build_peak_rss_delta_mb"),
        ("verify s", "load", "verify_s"),
        ("copy+open s", "load", "copy_open_s"),
        ("first query s", "load", "first_query_s"),
        ("dense p50 ms", "load", "dense_p50_ms"),
        ("dense p99 ms", "load", "dense_p99_ms"),
        ("BM25 open s", "load", "bm25_open_s"),
        ("BM25 p50 ms", "load", "bm25_p50_ms"),
        ("BM25 p99 ms", "load", "bm25_p99_ms"),
        ("worker peak RSS MB", "load", "worker_rss_mb"),
        ("log_model s", "load", "log_model_s"),
        ("pipeline load+verify+1st answer s", "load", "load_verify_first_answer_s"),
    ]
    print("\n| chunks | " + " | ".join(c[0] for c in columns) + " |")
    print("|---:|" + "---:|" * len(columns))
    for count, written, loaded in rows:
        values = [(written if s == "write" else loaded)[k] for _, s, k in columns]
        cells = " | ".join(f"{v:.1f}" if v >= 10 else f"{v:.2f}" for v in values)
        print(f"| {count:,} | {cells} |")


if __name__ == "__main__":
    main()
