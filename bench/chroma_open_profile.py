"""Where a worker's open of a bundled snapshot goes: each call timed, and the RSS it adds.

Usage: python -m bench.chroma_open_profile SNAPSHOT [--repeat 2]

Times, in one fresh process per repeat: ``import chromadb``, the host's working copy
(``rag_model.chroma_share``: a copy when no other process holds one, else nothing),
``PersistentClient``, ``get_collection``, the first ``count()`` (which loads the HNSW segment)
and the first query, with the resident memory before and after. Point it at a snapshot
``bench.scale --keep`` kept. Prints one line per repeat.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import click


def rss_mb() -> float:
    """Current resident set size of this process, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def profile(snapshot: Path) -> str:
    """One open of ``snapshot``'s Chroma folder, timed call by call."""
    import json

    import numpy as np

    started = time.perf_counter()
    import chromadb
    from chromadb.config import Settings

    imported = time.perf_counter() - started
    from rag_model.chroma_share import SharedCopy, copy_key
    from rag_model.index import CHROMA_DIR, COLLECTION_NAME, ChromaIndex

    index = ChromaIndex.open(snapshot, verify=False)
    key = copy_key(snapshot, json.dumps(index.manifest, sort_keys=True).encode())
    marks = [time.perf_counter()]
    held = SharedCopy.acquire(snapshot / CHROMA_DIR, key)
    marks.append(time.perf_counter())
    before = rss_mb()
    client = chromadb.PersistentClient(
        path=str(held.path), settings=Settings(anonymized_telemetry=False)
    )
    marks.append(time.perf_counter())
    collection = client.get_collection(COLLECTION_NAME, embedding_function=None)
    marks.append(time.perf_counter())
    collection.count()
    marks.append(time.perf_counter())
    opened = rss_mb()
    probe = np.ones((1, index.dimension), dtype=np.float32)
    collection.query(query_embeddings=probe, n_results=4, include=["distances"])
    marks.append(time.perf_counter())
    client.close()
    held.release()
    steps = [b - a for a, b in zip(marks, marks[1:], strict=False)]
    return (
        f"import chromadb {imported:.2f} s; host copy (copied={held.copied}) {steps[0]:.2f} s; "
        f"PersistentClient {steps[1]:.2f} s; get_collection {steps[2]:.2f} s; first count "
        f"{steps[3]:.2f} s; first query {steps[4]:.2f} s; RSS +{opened - before:.0f} MB after "
        f"open, {rss_mb():.0f} MB in all"
    )


@click.command()
@click.argument("snapshot", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--repeat", default=2, show_default=True)
@click.option("--one", is_flag=True, hidden=True)
def main(snapshot: Path, repeat: int, one: bool) -> None:
    """Print where opening SNAPSHOT's Chroma folder spends its time and memory."""
    if one:
        print(profile(snapshot))
        return
    import os

    print(f"load average: {os.getloadavg()}")
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, "-m", "bench.chroma_open_profile", str(snapshot), "--one"],
            capture_output=True,
            text=True,
            check=True,
        )
        print(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
