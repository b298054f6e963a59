"""Scale: the snapshot writer and workers' loads at 10k, 100k (1M) chunks, synthetic vectors.

Usage: python -m bench.scale [--chunks 10000,100000] [--queries 200] [--keep DIR] [--skip-log]

Embedding 100k chunks would take hours on 2 cores, so the chunks are synthetic: ~600-character
texts of random words from a 5,000-word vocabulary (so BM25 has realistic postings) and random
unit vectors (384 dimensions, float32). Everything else is the product's own code:
``rag_model.index.build_index`` writes the snapshot (Chroma, BM25, manifest),
``ChromaIndex.open`` verifies it and ``warm_up`` opens the host's working copy (made by the
first process, rag_model.chroma_share), ``Bm25Index`` builds and opens the lexical index. Each
size runs in fresh child processes, so peak RSS is per step: ``write`` (build the snapshot),
``load`` (the first worker on a host: verify every file's sha256, copy, open; queries at 1 and
16 clients, BM25; a second worker started while it holds the version, ``second``; a hot swap to
a new version of the same size) and ``log`` (log_model, then the pipeline's load). Bundled
mode only (bench/chroma_server.py measures server mode); see docs/scale.md.
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

PROCESS_STARTED = time.perf_counter()  # a second worker's start-to-ready counts from here

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


def rss_now_mb(kind: str = "VmRSS") -> float:
    """Current resident memory of this process, MB (``VmRSS``, or a part of it).

    ``RssAnon`` is the private part; ``RssFile`` the file pages (memory-mapped files, shared
    through the page cache with every process that maps them).
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{kind}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def folder_mb(folder: Path | None) -> float:
    """Bytes of the files under ``folder``, MB (0 when absent)."""
    if folder is None or not folder.exists():
        return 0.0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def worker_disk_mb(index) -> float:  # noqa: ANN001 - a ChromaIndex, before or after sharing
    """Disk this process added to open ``index``: its private copy, or the host copy it made."""
    if hasattr(index, "_workdir"):  # the code before workers shared one copy per host
        return folder_mb(index._workdir)
    held = index._copy
    return folder_mb(held.target) if held.copied else 0.0


def probes(count: int, seed: int) -> np.ndarray:
    """``count`` random query vectors."""
    return np.random.default_rng(seed).standard_normal((count, DIMENSION), dtype=np.float32)


def timed_queries(index, vectors: np.ndarray, clients: int) -> list[float]:  # noqa: ANN001
    """Per-query latency (ms) of ``vectors`` queried by ``clients`` threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    def one(vector: np.ndarray) -> float:
        started = time.perf_counter()
        index.query(vector, k=4)
        return (time.perf_counter() - started) * 1000

    if clients == 1:
        return [one(v) for v in vectors]
    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, vectors))


def step_second(folder: Path, started: float) -> dict[str, float]:
    """A second worker on the host: open the prepared snapshot (no hashing), first queries."""
    from rag_model.index import ChromaIndex
    from rag_model.lexical import Bm25Index

    imported = time.perf_counter() - started
    opened = time.perf_counter()
    index = ChromaIndex.open(
        folder, verify=False
    )  # as a worker opens what serving.prepare verified
    index.warm_up()
    warm = time.perf_counter() - opened
    index.query(probes(1, SEED)[0], k=4)
    Bm25Index.open(folder / "bm25").query("w1x7919", k=4)
    ready = time.perf_counter() - started
    disk = worker_disk_mb(index)
    index.close()
    return {
        "second_import_s": imported,
        "second_open_s": warm,
        "second_ready_s": ready,
        "second_disk_mb": disk,
        "second_rss_mb": rss_mb(),
    }


def hardlinked_clone(folder: Path, target: Path) -> Path:
    """Another snapshot folder with the same files (hard links): a new version of equal size."""
    for source in folder.rglob("*"):
        destination = target / source.relative_to(folder)
        if source.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, destination)
    return target


def step_load(folder: Path, queries: int) -> dict[str, float]:
    """What a worker does: verify, copy and open the snapshot; then time queries and a swap."""
    import shutil

    started = time.perf_counter()
    from rag_model.index import ChromaIndex
    from rag_model.lexical import Bm25Index

    imported = time.perf_counter() - started
    started = time.perf_counter()
    index = ChromaIndex.open(folder)  # verifies every file's sha256
    verify = time.perf_counter() - started
    started = time.perf_counter()
    index.warm_up()  # the first worker on the host: copy the Chroma folder + open a client
    copy_open = time.perf_counter() - started
    first_disk = worker_disk_mb(index)
    vectors = probes(queries, SEED + 1)
    started = time.perf_counter()
    index.query(vectors[0], k=4)
    first = time.perf_counter() - started
    dense = timed_queries(index, vectors[1:], 1)
    rss_dense = rss_mb()
    # a second worker while the first holds the snapshot open: a fresh interpreter, timed from
    # the parent (interpreter start and imports included)
    started = time.perf_counter()
    second = child("--step", "second", "--folder", str(folder))
    second["second_process_s"] = time.perf_counter() - started
    many = timed_queries(index, probes(queries * 2, SEED + 2), 16)
    started = time.perf_counter()
    lexical = Bm25Index.open(folder / "bm25")
    bm25_open = time.perf_counter() - started
    rng = np.random.default_rng(SEED + 1)
    words = [f"w{n}x{n * 7919 % 10007}" for n in rng.integers(0, 200, size=queries * 3)]
    sparse = []
    for n in range(queries):
        started = time.perf_counter()
        lexical.query(" ".join(words[n * 3 : n * 3 + 3]), k=4)
        sparse.append((time.perf_counter() - started) * 1000)
    worker_rss = rss_mb()
    private, mapped = rss_now_mb("RssAnon"), rss_now_mb("RssFile")
    # a hot swap: a new version of the same size opened beside the served one, as a worker's
    # watcher does (verify, host copy, open, first query); the old one is released after
    clone = hardlinked_clone(folder, folder.parent / "swap-version")
    try:
        before = rss_now_mb()
        started = time.perf_counter()
        fresh = ChromaIndex.open(clone)
        fresh.warm_up()
        fresh.query(vectors[0], k=4)
        swap = time.perf_counter() - started
        swap_rss = rss_now_mb() - before
        swap_disk = worker_disk_mb(fresh)
        index.close()
        fresh.close()
    finally:
        shutil.rmtree(clone, ignore_errors=True)
    return {
        "import_s": imported,
        "verify_s": verify,
        "copy_open_s": copy_open,
        "first_disk_mb": first_disk,
        "first_query_s": first,
        "dense_p50_ms": float(np.percentile(dense, 50)),
        "dense_p99_ms": float(np.percentile(dense, 99)),
        "dense16_p50_ms": float(np.percentile(many, 50)),
        "dense16_p99_ms": float(np.percentile(many, 99)),
        "worker_rss_after_dense_mb": rss_dense,
        "bm25_open_s": bm25_open,
        "bm25_p50_ms": float(np.percentile(sparse, 50)),
        "bm25_p99_ms": float(np.percentile(sparse, 99)),
        "worker_rss_mb": worker_rss,
        "worker_rss_anon_mb": private,
        "worker_rss_file_mb": mapped,
        "swap_load_s": swap,
        "swap_rss_delta_mb": swap_rss,
        "swap_disk_mb": swap_disk,
        **second,
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


BUILD_COLUMNS = [
    ("write s", "write_s"),
    ("snapshot MB", "snapshot_mb"),
    ("write peak RSS MB", "write_peak_rss_mb"),
    ("BM25 build s", "bm25_build_s"),
    ("BM25 build +RSS MB", "bm25_build_peak_rss_delta_mb"),
    ("log_model s", "log_model_s"),
    ("pipeline load+verify+1st answer s", "load_verify_first_answer_s"),
]
LOAD_COLUMNS = [
    ("verify s", "verify_s"),
    ("1st worker copy+open s", "copy_open_s"),
    ("1st worker disk MB", "first_disk_mb"),
    ("2nd worker start-to-ready s", "second_process_s"),
    ("2nd worker open s", "second_open_s"),
    ("2nd worker disk MB", "second_disk_mb"),
    ("2nd worker peak RSS MB", "second_rss_mb"),
    ("dense p50 ms", "dense_p50_ms"),
    ("dense p99 ms", "dense_p99_ms"),
    ("16 clients p50 ms", "dense16_p50_ms"),
    ("16 clients p99 ms", "dense16_p99_ms"),
    ("BM25 open s", "bm25_open_s"),
    ("BM25 p50 ms", "bm25_p50_ms"),
    ("BM25 p99 ms", "bm25_p99_ms"),
    ("worker peak RSS MB", "worker_rss_mb"),
    ("of it private MB", "worker_rss_anon_mb"),
    ("of it shared file pages MB", "worker_rss_file_mb"),
    ("hot swap load s", "swap_load_s"),
    ("hot swap +RSS MB", "swap_rss_delta_mb"),
    ("hot swap disk MB", "swap_disk_mb"),
]


def table(rows: list[tuple[int, dict[str, float]]], columns: list[tuple[str, str]]) -> None:
    """Print one markdown table of ``columns`` per size."""
    print("\n| chunks | " + " | ".join(c[0] for c in columns) + " |")
    print("|---:|" + "---:|" * len(columns))
    for count, row in rows:
        values = [row.get(key) for _, key in columns]
        cells = " | ".join(
            "-" if v is None else f"{v:.1f}" if v >= 10 else f"{v:.2f}" for v in values
        )
        print(f"| {count:,} | {cells} |")


def written_snapshot(count: int, place: Path) -> dict[str, float]:
    """The write step's figures: the kept ones when ``place`` holds a finished snapshot."""
    figures = place / "write.json"
    if figures.is_file() and (place / "snapshot" / "manifest.json").is_file():
        print(f"{count}: reusing the snapshot in {place} (write figures from {figures})")
        return json.loads(figures.read_text().strip().splitlines()[-1])
    written = child("--chunks", str(count), "--step", "write", "--folder", str(place / "snapshot"))
    figures.write_text(json.dumps(written))
    return written


@click.command()
@click.option("--chunks", default="10000,100000", show_default=True)
@click.option("--queries", default=200, show_default=True)
@click.option(
    "--keep",
    default="",
    help="Keep each size's snapshot in KEEP/<chunks>/ and reuse one found there (1M takes "
    "over an hour to write).",
)
@click.option("--skip-log", is_flag=True, help="Leave out log_model and the pipeline load.")
@click.option(
    "--step",
    type=click.Choice(["write", "load", "second", "log"]),
    default=None,
    hidden=True,
)
@click.option("--folder", default="", hidden=True)
def main(
    chunks: str, queries: int, keep: str, skip_log: bool, step: str | None, folder: str
) -> None:
    """Print the scale tables (bundled mode, synthetic vectors)."""
    if step == "write":
        print(json.dumps(step_write(int(chunks), Path(folder))))
        return
    if step == "load":
        print(json.dumps(step_load(Path(folder), queries)))
        return
    if step == "second":
        print(json.dumps(step_second(Path(folder), PROCESS_STARTED)))
        return
    if step == "log":
        print(json.dumps(step_log(Path(folder))))
        return
    print(f"load average at start: {os.getloadavg()}", flush=True)
    rows = []
    for count in (int(c) for c in chunks.split(",")):
        with tempfile.TemporaryDirectory(prefix="rag-model-scale-") as tmp:
            place = Path(keep) / str(count) if keep else Path(tmp)
            place.mkdir(parents=True, exist_ok=True)
            snapshot = place / "snapshot"
            row = written_snapshot(count, place)
            row.update(
                child("--step", "load", "--folder", str(snapshot), "--queries", str(queries))
            )
            if not skip_log:
                row.update(child("--step", "log", "--folder", str(snapshot)))
            rows.append((count, row))
            print(count, json.dumps(row), flush=True)
    print(f"load average at end: {os.getloadavg()}")
    table(rows, BUILD_COLUMNS)
    table(rows, LOAD_COLUMNS)


if __name__ == "__main__":
    main()
