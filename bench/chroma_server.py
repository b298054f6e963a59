"""What server mode costs: publishing, the load-time checks, and query latency against bundled.

Usage: python bench/chroma_server.py [--chunks 10000] [--queries 200] [--snapshot FOLDER]
Builds a synthetic snapshot (or takes a built one: ``--snapshot``, e.g. one ``bench.scale
--keep`` kept) (random unit vectors, 384 dimensions, ~600-character texts), starts
``chroma run`` on a free local port over a temporary folder, publishes the snapshot, stages a
server-mode model folder, opens it with each ``index.server_verify`` setting, and times single
dense queries (k=4, texts fetched for the hits) on the bundled and the server index, from one
client and from 16 threads at once, and the resident memory of the server process and of
this client process. Prints a Markdown table.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import numpy as np
import requests

from rag_model.chroma_server import RemoteChromaIndex
from rag_model.config import IndexConfig, RagConfig
from rag_model.documents import Chunk
from rag_model.index import ChromaIndex, build_index
from rag_model.publish import publish_snapshot, stage_server_snapshot

DIMENSION = 384


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_chroma(folder: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("chroma")), "run", "--path", str(folder)]
        + ["--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if requests.get(f"{url}/api/v2/heartbeat", timeout=1).ok:
                return process, url
        except requests.RequestException:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("chroma run did not answer its heartbeat in 60 s")


def _synthetic(count: int, rng: np.random.Generator) -> tuple[list[Chunk], np.ndarray]:
    words = [f"w{i}" for i in range(5000)]
    chunks = [
        Chunk(
            id=f"chunk-{i:07d}",
            document_id=f"doc-{i // 10:06d}",
            text=" ".join(rng.choice(words, size=100)),
            metadata={"document_id": f"doc-{i // 10:06d}", "title": f"T{i % 50}"},
        )
        for i in range(count)
    ]
    vectors = rng.normal(size=(count, DIMENSION)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return chunks, vectors


def _latency(index: ChromaIndex, queries: np.ndarray, clients: int = 1) -> tuple[float, float]:
    """p50 and p95 (one client) or p99 (several), ms."""
    index.query(queries[0], k=4)  # connect / open outside the timing

    def one(vector: np.ndarray) -> float:
        started = time.perf_counter()
        index.query(vector, k=4)
        return (time.perf_counter() - started) * 1000

    if clients == 1:
        times = [one(vector) for vector in queries[1:]]
    else:
        with ThreadPoolExecutor(clients) as pool:
            times = list(pool.map(one, queries[1:]))
    tail = 95 if clients == 1 else 99
    return float(np.percentile(times, 50)), float(np.percentile(times, tail))


def _rss_mb(pid: str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@click.command()
@click.option("--chunks", "count", default=10_000, show_default=True)
@click.option("--queries", default=200, show_default=True)
@click.option("--snapshot", default="", help="A built snapshot to publish instead of building one.")
def main(count: int, queries: int, snapshot: str) -> None:
    """Print the costs of server mode for a synthetic index of COUNT chunks."""
    rng = np.random.default_rng(0)
    probes = rng.normal(size=(queries + 1, DIMENSION)).astype(np.float32)
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        process, url = _start_chroma(root / "server")
        built = Path(snapshot) if snapshot else root / "snapshot"
        try:
            if not snapshot:
                chunks, vectors = _synthetic(count, rng)
                started = time.perf_counter()
                build_index(
                    chunks,
                    vectors,
                    built,
                    IndexConfig(),
                    embedder_id="synthetic",
                    corpus_fingerprint="synthetic",
                )
                rows.append(
                    ("build the bundled snapshot", f"{time.perf_counter() - started:.1f} s")
                )
            server = {"location": "server", "server_url": url, "collection": "bench"}
            config = RagConfig.from_dict({"index": server})
            published = publish_snapshot(built, config.index)
            rows.append(("publish (upload, read back, digest)", f"{published.seconds:.1f} s"))
            started = time.perf_counter()
            stage_server_snapshot(config, built, root / "model-index")
            rows.append(
                ("stage a server-mode model (full check)", f"{time.perf_counter() - started:.1f} s")
            )
            for verify in ("digest", "fingerprint"):
                index_config = IndexConfig(**server, server_verify=verify)
                started = time.perf_counter()
                remote = RemoteChromaIndex.open_remote(root / "model-index", index_config)
                rows.append(
                    (
                        f"load-time check, server_verify={verify}",
                        f"{time.perf_counter() - started:.2f} s",
                    )
                )
            before = _rss_mb()
            remote.query(probes[0], k=4)
            rows.append(("server-mode client +RSS (1st query)", f"{_rss_mb() - before:.0f} MB"))
            bundled = ChromaIndex.open(built)
            many = rng.normal(size=(queries * 2 + 1, DIMENSION)).astype(np.float32)
            for name, index in (("bundled", bundled), ("server", remote)):
                p50, p95 = _latency(index, probes)
                rows.append((f"dense query k=4, {name} (p50 / p95)", f"{p50:.2f} / {p95:.2f} ms"))
                p50, p99 = _latency(index, many, clients=16)
                rows.append(
                    (
                        f"dense query k=4, {name}, 16 clients (p50 / p99)",
                        f"{p50:.2f} / {p99:.2f} ms",
                    )
                )
            rows.append(("chroma server process RSS", f"{_rss_mb(str(process.pid)):.0f} MB"))
            bundled.close()
            remote.close()
        finally:
            process.terminate()
            process.wait(30)
    print(f"{count} chunks x {DIMENSION} dimensions, {queries} queries\n")
    print("| step | time |\n|---|---|")
    for step, value in rows:
        print(f"| {step} | {value} |")


if __name__ == "__main__":
    main()
