"""What shadow traffic costs live traffic: req/s and p99 at 16 clients, shadow off / 0.1 / 1.0.

Usage: python -m bench.shadow_overhead [--rounds 3] [--seconds 20] [--clients 16] [--fake]

Builds the sample corpus with real MiniLM (``--fake``: the hash embedder) into a temporary
SQLite store, registers it @production and a second version (other chunking) @candidate, then
starts gunicorn (2 sync workers, the answer cache off so every question is computed) once per
setting and round, in alternating order, each driven by ``bench.loadgen`` for ``--seconds``
after a warm-up. Prints the median over rounds of live req/s and p99, and the shadow jobs
(answered / dropped) per run from ``/metrics``. The shadow shares the worker's CPU: on a
2-core machine an equal-cost shadow at 1.0 competes with the live answer for it.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import click

from bench.loadgen import run_load, stop, wait_ready
from bench.soak import free_port, questions

PROJECT = Path(__file__).resolve().parents[1]
SAMPLE = PROJECT / "data" / "sample" / "corpus.jsonl"
SETTINGS = {"off": None, "0.1": "0.1", "1.0": "1.0"}


def register(root: Path, fake: bool) -> str:
    """Production and candidate versions in a new store under ``root``; its tracking URI."""
    import mlflow

    from rag_model.build import build_snapshot
    from rag_model.config import RagConfig
    from rag_model.packaging.log import log_rag_model
    from rag_model.packaging.registry import register_version, set_alias

    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.MlflowClient(uri).create_experiment(
        "shadow-bench", artifact_location=(root / "artifacts").as_uri()
    )
    base: dict[str, Any] = {"embedding": {"model": "hash-embedder"}} if fake else {}
    for alias, chunk_size in (("production", 800), ("candidate", 600)):
        config = RagConfig.from_dict({**base, "chunking": {"chunk_size": chunk_size}})
        built = build_snapshot(config, SAMPLE, root / f"snapshot-{alias}")
        with mlflow.start_run(experiment_id=experiment):
            info = log_rag_model(config, built.snapshot_dir)
        set_alias("shadow-bench", alias, register_version(info.model_uri, "shadow-bench").version)
    return uri


def metrics(port: int) -> str:
    """The server's /metrics text."""
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()


def shadow_jobs(port: int) -> dict[str, float]:
    """Shadow jobs so far, by outcome."""
    text = metrics(port)
    return {
        outcome: float(value)
        for outcome, value in re.findall(r'rag_shadow_jobs_total\{outcome="(\w+)"\} (\S+)', text)
    }


def trial(uri: str, sample: str | None, clients: int, seconds: float, log: Path) -> dict[str, Any]:
    """One server, one setting: live req/s, p99, errors and the shadow's jobs."""
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_REGISTRY_URI": uri,
        "RAG_MODEL_URI": "models:/shadow-bench@production",
        "RAG_BIND": f"127.0.0.1:{port}",
        "RAG_WORKERS": "2",
        "RAG_ANSWER_CACHE_SIZE": "0",
        # no alias check during a run: a worker's first one imports MLflow (seconds of CPU),
        # which a shadow worker has already done while loading the shadow: it would bias "off"
        "RAG_POLL_SECONDS": "3600",
    }
    if sample is not None:
        env |= {"RAG_SHADOW_URI": "models:/shadow-bench@candidate", "RAG_SHADOW_SAMPLE": sample}
    command = [sys.executable, "-m", "gunicorn", "-c", "serving/gunicorn.conf.py"]
    process = subprocess.Popen(
        [*command, "serving:create_app()"],
        cwd=PROJECT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # bench.loadgen.stop ends the whole process group
    )
    try:
        wait_ready(port, "/ready", process)
        asked = questions()
        body = lambda question: {"question": question}  # noqa: E731
        # every worker has loaded production (and the shadow) before any load: the same wait
        # for every setting, so no run measures a worker still loading
        loads = ["models:/shadow-bench@production"] + (
            ["models:/shadow-bench@candidate"] if sample else []
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if all(text.count(f"loaded {uri}") >= 2 for uri in loads):
                break
            time.sleep(0.5)
        time.sleep(2)
        run_load(port, "/v1/query", body, asked, clients, 3)  # warm-up, not measured
        before = shadow_jobs(port)
        result = run_load(port, "/v1/query", body, asked, clients, seconds)
        after = shadow_jobs(port)
    finally:
        stop(process)
    return {
        "rate": result.rate,
        "p99": result.percentile(0.99),
        "errors": result.errors,
        "answered": after.get("answered", 0) - before.get("answered", 0),
        "dropped": after.get("dropped", 0) - before.get("dropped", 0),
    }


@click.command()
@click.option("--rounds", default=3, show_default=True)
@click.option("--seconds", default=20.0, show_default=True)
@click.option("--clients", default=16, show_default=True)
@click.option("--fake", is_flag=True, help="Hash embedder instead of MiniLM (a quick check).")
def main(rounds: int, seconds: float, clients: int, fake: bool) -> None:
    """Print live req/s and p99 with the shadow off, at 0.1 and at 1.0 (medians of rounds)."""
    from rag_model.offline import apply_offline_defaults

    apply_offline_defaults()
    load_before = os.getloadavg()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        uri = register(Path(tmp), fake)
        for number in range(rounds):
            order = list(SETTINGS) if number % 2 == 0 else list(reversed(SETTINGS))
            for name in order:
                log = Path(tmp) / f"server-{number}-{name}.log"
                runs[name].append(trial(uri, SETTINGS[name], clients, seconds, log))
                print(f"round {number + 1} {name}: {runs[name][-1]}", file=sys.stderr)
    print(
        f"\n{'hash embedder' if fake else 'MiniLM'}, sample corpus, gunicorn 2 sync workers, "
        f"{clients} clients, {seconds:g} s per run, median of {rounds} rounds in alternating "
        f"order; load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}\n"
    )
    print("| shadow sample | live req/s | live p99 ms | errors | shadow answered | dropped |")
    print("|---|---|---|---|---|---|")
    for name, trials in runs.items():
        med = {key: statistics.median(t[key] for t in trials) for key in trials[0]}
        print(
            f"| {name} | {med['rate']:.1f} | {med['p99']:.0f} | {med['errors']:.0f} | "
            f"{med['answered']:.0f} | {med['dropped']:.0f} |"
        )


if __name__ == "__main__":
    main()
