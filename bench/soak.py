"""Soak: a gunicorn server under closed-loop load for minutes, every worker's RSS sampled.

Usage: python -m bench.soak [--minutes 10] [--clients 16] [--workers 2] [--model URI]

Without ``--model`` it builds the sample corpus (data/sample) with the default RagConfig (real
MiniLM) into a temporary SQLite tracking store and registers it as ``@production``; with
``--model`` it serves that URI from the store in ``MLFLOW_TRACKING_URI``. It then starts
gunicorn (``serving/gunicorn.conf.py``) on it, warms it up under the same load, and drives
``/v1/query`` for ``--minutes`` with ``--clients`` closed-loop clients (``bench/loadgen.py``)
asking the sample questions with a running number appended, so no answer or embedding cache
serves a repeat and the caches fill as they would with real traffic. Every
``--sample-seconds`` it records each worker's RSS (psutil when installed, else /proc).

Prints: requests, errors by kind, req/s, p50/p99, per worker RSS after warm-up / at the end
/ the maximum and the growth, and RSS by minute.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadgen import LoadResult, process_tree, rss_mib, run_load, stop, wait_ready

PROJECT = Path(__file__).resolve().parents[1]
SAMPLE = PROJECT / "data" / "sample"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, checked (one error line naming the option)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="measured load time")
    parser.add_argument("--clients", type=int, default=16, help="closed-loop clients")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--model",
        default="",
        help="model URI to serve (store from MLFLOW_TRACKING_URI); default: build the sample",
    )
    parser.add_argument("--warmup-seconds", type=float, default=60.0, help="load before RSS start")
    parser.add_argument("--sample-seconds", type=float, default=5.0, help="RSS sampling period")
    args = parser.parse_args(argv)
    if args.model and not os.environ.get("MLFLOW_TRACKING_URI"):
        parser.error("--model needs MLFLOW_TRACKING_URI set to the store that holds it")
    for name in ("minutes", "clients", "workers", "sample_seconds"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    return args


def free_port() -> int:
    """A free localhost port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def questions() -> Iterator[str]:
    """The sample questions, endlessly, each with a running number: unique-ish texts."""
    with (SAMPLE / "eval.jsonl").open(encoding="utf-8") as rows:
        asked = [json.loads(row)["question"] for row in rows if row.strip()]
    for number, question in enumerate(itertools.cycle(asked)):
        yield f"{question} ({number})"


def build_sample_model(root: Path) -> tuple[str, str]:
    """Build, log and register the sample corpus with real MiniLM: (tracking URI, model URI)."""
    import mlflow

    from rag_model.build import build_snapshot
    from rag_model.config import RagConfig
    from rag_model.packaging.log import log_rag_model
    from rag_model.packaging.registry import PRODUCTION, register_version, set_alias

    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.MlflowClient(uri).create_experiment(
        "soak", artifact_location=(root / "artifacts").as_uri()
    )
    config = RagConfig()
    built = build_snapshot(config, SAMPLE / "corpus.jsonl", root / "snapshot")
    with mlflow.start_run(experiment_id=experiment):
        info = log_rag_model(config, built.snapshot_dir)
    ref = register_version(info.model_uri, "soak")
    set_alias("soak", PRODUCTION, ref.version)
    return uri, "models:/soak@production"


def rss(pid: int) -> float:
    """Resident memory of ``pid`` in MiB (0 once it is gone)."""
    try:
        import psutil
    except ImportError:
        return rss_mib(pid)
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return 0.0


@dataclass
class Memory:
    """RSS samples (MiB) of one worker: after warm-up, at the end, and every one between."""

    samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MiB)

    @property
    def start(self) -> float:
        return self.samples[0][1]

    @property
    def end(self) -> float:
        return self.samples[-1][1]

    @property
    def peak(self) -> float:
        return max(mib for _, mib in self.samples)

    @property
    def growth(self) -> float:
        return (self.end - self.start) / self.start * 100 if self.start else float("nan")


def workers_of(master: int) -> list[int]:
    """The gunicorn master's workers (its descendants) now."""
    return sorted(set(process_tree(master)) - {master})


def soak(
    port: int, master: int, clients: int, seconds: float, every: float, asked: Iterator[str]
) -> tuple[LoadResult, dict[int, Memory], list[float]]:
    """Load for ``seconds`` while sampling each worker's RSS every ``every`` seconds.

    Returns the load, the memory per worker pid and the machine's 1-minute load averages
    (the conditions: other processes on the same cores change every figure).
    """
    body = lambda question: {"question": question}  # noqa: E731
    result: list[LoadResult] = []
    loader = threading.Thread(
        target=lambda: result.append(run_load(port, "/v1/query", body, asked, clients, seconds))
    )
    memory: dict[int, Memory] = {}
    machine: list[float] = []
    started = time.perf_counter()
    loader.start()
    while True:  # the first sample at once, the last one after the load ended
        elapsed = time.perf_counter() - started
        for pid in workers_of(master):
            memory.setdefault(pid, Memory()).samples.append((elapsed, rss(pid)))
        machine.append(os.getloadavg()[0])
        if not loader.is_alive():
            break
        loader.join(every)
    return result[0], memory, machine


def print_report(
    args: argparse.Namespace, load: LoadResult, memory: dict[int, Memory], machine: list[float]
) -> None:
    """The Markdown tables: load, RSS per worker, RSS by minute."""
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(load.error_kinds.items()))
    print(
        f"\n{args.minutes:g} min, {args.clients} clients, {args.workers} workers, "
        f"{os.cpu_count()} CPUs; 1-min load average during the soak: mean "
        f"{sum(machine) / len(machine):.1f}, max {max(machine):.1f}"
    )
    print("\n| requests | errors | req/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    print(
        f"| {len(load.latencies) + load.errors} | {load.errors}{f' ({kinds})' if kinds else ''} "
        f"| {load.rate:.1f} | {load.percentile(0.50):.1f} | {load.percentile(0.99):.1f} |"
    )
    print("\n| worker pid | RSS after warm-up MiB | RSS at end MiB | max MiB | growth |")
    print("|---|---|---|---|---|")
    for pid, worker in sorted(memory.items()):
        print(
            f"| {pid} | {worker.start:.1f} | {worker.end:.1f} | {worker.peak:.1f} "
            f"| {worker.growth:+.1f}% |"
        )
    if len(memory) != args.workers:
        print(f"\n{len(memory)} worker pids seen for {args.workers} workers: one was replaced")
    print("\nRSS by minute (MiB), from the end of the warm-up:\n")
    print("| minute | " + " | ".join(f"worker {pid}" for pid in sorted(memory)) + " |")
    print("|---|" + "---|" * len(memory))
    marks = [(f"{minute}", minute * 60.0) for minute in range(int(args.minutes) + 1)]
    for label, second in [*marks, ("end", float("inf"))]:
        row = [_at(worker, second) for _, worker in sorted(memory.items())]
        print(f"| {label} | " + " | ".join(row) + " |")


def _at(worker: Memory, second: float) -> str:
    """The worker's last RSS sample at or before ``second`` (its first one for minute 0)."""
    before = [mib for at, mib in worker.samples if at <= second] or [worker.start]
    return f"{before[-1]:.1f}"


def main(argv: list[str] | None = None) -> None:
    """Build or take the model, serve it, warm up, soak, print the report."""
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rag-soak-") as tmp:
        root = Path(tmp)
        if args.model:
            tracking_uri, model_uri = os.environ["MLFLOW_TRACKING_URI"], args.model
        else:
            print("building the sample model (MiniLM) ...", flush=True)
            tracking_uri, model_uri = build_sample_model(root)
        port = free_port()
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": tracking_uri,
            "MLFLOW_REGISTRY_URI": tracking_uri,
            "RAG_MODEL_URI": model_uri,
            "RAG_BIND": f"127.0.0.1:{port}",
            "RAG_WORKERS": str(args.workers),
        }
        with (root / "server.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "serving/gunicorn.conf.py"]
                + ["serving:create_app()"],
                cwd=PROJECT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # loadgen.stop signals the whole group
            )
        try:
            ready = wait_ready(port, "/ready", process)
            print(f"{model_uri} ready in {ready:.1f} s", flush=True)
            asked = questions()
            body = lambda question: {"question": question}  # noqa: E731
            warm = run_load(port, "/v1/query", body, asked, args.clients, args.warmup_seconds)
            print(f"warm-up: {len(warm.latencies)} requests, {warm.errors} errors", flush=True)
            load, memory, machine = soak(
                port, process.pid, args.clients, args.minutes * 60, args.sample_seconds, asked
            )
        finally:
            stop(process)
            server_log = (root / "server.log").read_text(errors="replace")
        print_report(args, load, memory, machine)
        if load.errors:
            print(f"\nfirst error: {load.first_error}\nserver log tail:\n{server_log[-3000:]}")


if __name__ == "__main__":
    main()
