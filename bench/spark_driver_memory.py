"""Spark builds: the driver's memory while the missed vectors come back, one job against slices.

Usage: python -m bench.spark_driver_memory [--texts 100000] [--rows-per-job 20000]

Embeds ``--texts`` synthetic texts with ``rag_spark.indexing.SparkEmbedder`` on ``local[2]``
with the hash embedder (the bench is about the driver, not the model: MiniLM would take hours
for 100k texts on 2 cores), twice, each in a fresh process: all texts in one Spark job (what
``--engine spark`` did before: ``toArrow`` gathered every vector on the driver at once), then in
slices of ``--rows-per-job`` (the default now). Prints the Python driver's peak RSS growth
during ``embed`` (``ru_maxrss``: the session started and the texts were made before), the
vectors' own size and the seconds. The JVM's memory is not counted (on ``local[n]`` it is the
executors' too).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

import click

DIMENSION = 384


def peak_mb() -> float:
    """Peak resident set size of this process, MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(texts: int, rows_per_job: int) -> dict[str, float]:
    """One embed of ``texts`` texts on Spark, in this process."""
    from rag_model.config import RagConfig
    from rag_spark.indexing import SparkEmbedder
    from rag_spark.session import spark_session

    spark = spark_session("local[2]", app_name="bench-spark-driver-memory")
    try:
        settings = RagConfig.from_dict({"embedding": {"model": "hash-embedder"}}).to_dict()
        words = [f"w{n}" for n in range(5000)]
        batch = [" ".join(words[(i * 7 + j * 13) % 5000] for j in range(60)) for i in range(texts)]
        embedder = SparkEmbedder(spark, settings, partitions=2, rows_per_job=rows_per_job)
        embedder.embed(batch[:10])  # Python workers started outside the measure
        before = peak_mb()
        started = time.perf_counter()
        vectors = embedder.embed(batch)
        seconds = time.perf_counter() - started
        return {
            "rows_per_job": rows_per_job,
            "driver_peak_growth_mb": peak_mb() - before,
            "driver_peak_mb": peak_mb(),
            "vectors_mb": vectors.nbytes / 1e6,
            "seconds": seconds,
        }
    finally:
        spark.stop()


@click.command()
@click.option("--texts", default=100_000, show_default=True)
@click.option("--rows-per-job", default=20_000, show_default=True)
@click.option("--one", is_flag=True, hidden=True)
def main(texts: int, rows_per_job: int, one: bool) -> None:
    """Print the driver's peak memory growth: one Spark job against slices."""
    if one:
        print(json.dumps(measure(texts, rows_per_job)))
        return
    print(f"load average at start: {os.getloadavg()}", flush=True)
    rows = []
    for per_job in (texts, rows_per_job):
        done = subprocess.run(
            [sys.executable, "-m", "bench.spark_driver_memory", "--one"]
            + ["--texts", str(texts), "--rows-per-job", str(per_job)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"load average at end: {os.getloadavg()}")
    print(f"\n{texts:,} texts x {DIMENSION} dimensions, local[2], 2 partitions, hash embedder\n")
    print(
        "| texts per Spark job | driver peak RSS growth MB | driver peak RSS MB | vectors MB | s |"
    )
    print("|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['rows_per_job']:,} | {row['driver_peak_growth_mb']:.0f} | "
            f"{row['driver_peak_mb']:.0f} | {row['vectors_mb']:.0f} | {row['seconds']:.1f} |"
        )


if __name__ == "__main__":
    main()
