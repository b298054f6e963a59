"""Spark builds: the driver's peak memory through a whole ``--engine spark`` build.

Usage: python -m bench.spark_driver_memory [--texts 100000] [--cache/--no-cache]
       [--baseline CHECKOUT]

Builds a synthetic corpus of ``--texts`` one-chunk documents (five sentences of twelve words
each from a 5,000-word vocabulary, plus the document's number: every text is unique) with
``rag_spark.indexing.build_snapshot_on_spark`` on ``local[2]``, 2 partitions, the hash embedder
(the bench is about the driver, not the model: MiniLM would take hours for 100k chunks on 2
cores) and the default config otherwise, so the snapshot carries sentence vectors (five per
chunk) as a default build's does. ``--cache``: a fresh embedding cache file (a cold build:
every text misses and goes to Spark, as a first build does); ``--no-cache``: none.

Each build runs in a fresh child process with the ``rag_model``/``rag_spark`` of a checkout
(this one; with ``--baseline``, another one first, e.g. ``/work/main`` before a change). Before
measuring, the child starts the session and builds 10 documents, so Python workers, Chroma and
bm25s are loaded outside the measure. It prints the driver's peak RSS growth over the whole
build (``ru_maxrss`` after minus before: reading, chunking on Spark, embedding on Spark, the
Chroma write, BM25, sentence vectors, manifest), the vectors' own sizes and the seconds. The
JVM is another process and is not counted (on ``local[n]`` it runs the executors too); Chroma
runs in the driver's process, so its in-memory HNSW index is counted.
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

DIMENSION = 384
WORDS = 5_000
SENTENCES = 5  # per chunk
WORDS_PER_SENTENCE = 12
CHECKOUT = Path(__file__).resolve().parents[1]


def peak_mb() -> float:
    """Peak resident set size of this process, MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_corpus(path: Path, count: int, offset: int = 0) -> None:
    """``count`` one-chunk documents of five sentences each, as a .jsonl file."""
    words = [f"w{n}" for n in range(WORDS)]
    with path.open("w") as out:
        for i in range(offset, offset + count):
            sentences = []
            for s in range(SENTENCES):
                picked = (
                    words[(i * 7 + s * 31 + j * 13) % WORDS] for j in range(WORDS_PER_SENTENCE)
                )
                # the document's number makes every chunk and sentence unique: a cold build
                # embeds every text (the cache would otherwise serve repeats)
                sentences.append(f"S{s} d{i} " + " ".join(picked) + ".")
            out.write(json.dumps({"id": f"doc{i:07d}", "text": " ".join(sentences)}) + "\n")


def measure(texts: int, cache: bool) -> dict[str, float]:
    """One Spark build of ``texts`` synthetic chunks, in this process."""
    from rag_model.build import BuildResult
    from rag_model.config import RagConfig
    from rag_spark.indexing import build_snapshot_on_spark
    from rag_spark.session import spark_session

    config = RagConfig.from_dict({"embedding": {"model": "hash-embedder"}})
    spark = spark_session("local[2]", app_name="bench-spark-driver-memory")
    with tempfile.TemporaryDirectory(prefix="spark-driver-memory-") as tmp:
        folder = Path(tmp)
        write_corpus(folder / "warm.jsonl", 10, offset=10_000_000)
        write_corpus(folder / "corpus.jsonl", texts)

        def build(name: str, into: str) -> BuildResult:
            return build_snapshot_on_spark(
                spark,
                config,
                folder / f"{name}.jsonl",
                folder / into,
                partitions=2,
                embedding_cache=folder / "cache.sqlite3" if cache else None,
            )

        try:
            build("warm", "warm")  # workers, Chroma and bm25s loaded outside the measure
            before = peak_mb()
            started = time.perf_counter()
            result = build("corpus", "snapshot")
            seconds = time.perf_counter() - started
        finally:
            spark.stop()
        sentences = folder / "snapshot" / "sentences" / "vectors.npy"
        return {
            "driver_peak_growth_mb": peak_mb() - before,
            "driver_peak_mb": peak_mb(),
            "chunks": result.chunk_count,
            "chunk_vectors_mb": result.chunk_count * DIMENSION * 4 / 1e6,
            "sentence_vectors_mb": sentences.stat().st_size / 1e6 if sentences.exists() else 0.0,
            "seconds": seconds,
        }


def run_child(checkout: Path, texts: int, cache: bool) -> dict[str, float]:
    """``measure`` in a fresh process importing the code of ``checkout``."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--one", "--texts", str(texts)]
        + ["--cache" if cache else "--no-cache"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(checkout)},
        check=False,
    )
    if done.returncode != 0:
        raise click.ClickException(f"the build with {checkout} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@click.command()
@click.option("--texts", default=100_000, show_default=True, help="chunks (one per document)")
@click.option("--cache/--no-cache", default=True, show_default=True, help="a fresh cache file")
@click.option(
    "--baseline",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="another checkout to measure first (its rag_model and rag_spark)",
)
@click.option("--one", is_flag=True, hidden=True)
def main(texts: int, cache: bool, baseline: Path | None, one: bool) -> None:
    """Print the driver's peak memory growth through a whole Spark build."""
    if one:
        print(json.dumps(measure(texts, cache)))
        return
    print(f"load average at start: {os.getloadavg()}", flush=True)
    checkouts = ([baseline] if baseline else []) + [CHECKOUT]
    rows = [(checkout, run_child(checkout, texts, cache)) for checkout in checkouts]
    print(f"load average at end: {os.getloadavg()}")
    print(
        f"\n{texts:,} one-chunk documents, {SENTENCES} sentences each, local[2], 2 partitions, "
        f"hash embedder, {'a fresh embedding cache' if cache else 'no embedding cache'}\n"
    )
    print(
        "| code | chunks | driver peak RSS growth MB | driver peak RSS MB | chunk vectors MB "
        "| sentence vectors MB | s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for checkout, row in rows:
        print(
            f"| {checkout} | {row['chunks']:,} | {row['driver_peak_growth_mb']:.0f} | "
            f"{row['driver_peak_mb']:.0f} | {row['chunk_vectors_mb']:.0f} | "
            f"{row['sentence_vectors_mb']:.0f} | {row['seconds']:.1f} |"
        )


if __name__ == "__main__":
    main()
