"""Our gunicorn server against ``mlflow models serve``, in one run, on the same machine.

Usage: python -m bench.serving_vs_mlflow [--paragraphs 2000] [--workers 2] [--seconds 8]

Builds (cached under .rag-model/bench-cache) two versions of the same pipeline over ~2,000
SQuAD v1.1 dev paragraphs (read from ../shared/data, never copied here) and registers them in a
fresh MLflow store:

- production: the product's defaults with the ONNX encoder (``--backend``);
- seed: what users build today: torch encoder, no cache, dense Chroma k=4, extractive that
  embeds the retrieved sentences per answer (no build-time sentence vectors).

Then starts, one after the other, (a) our gunicorn server on production, (b) ``mlflow models
serve --env-manager local`` on the same version with as many workers, (c) ``mlflow models
serve`` on the seed version; drives each with closed-loop clients (1, 4, 16, 64) with unique
questions and again with half of them repeated; and prints req/s, p50/p95/p99, errors, worker
RSS and start-to-ready per server, the ratios, index build throughput and in-process latency.
Every server gets OMP_NUM_THREADS=1 (one encoder thread per worker), as ours sets by default.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from bench.loadgen import LoadResult, post, run_load, server_ms, stop, wait_ready, worker_rss

PROJECT = Path(__file__).resolve().parents[1]
SEED_CONFIG = {
    "embedding": {"backend": "torch", "query_cache_size": 0},
    "index": {"sentence_vectors": False},  # what the seed built: sentences embedded per answer
    "retrieval": {"mode": "dense", "k": 4},
    "generation": {"generator": "extractive"},
}
INVOKE = {"dataframe_split": {"columns": ["question"], "data": [["?"]]}}


@dataclass
class ServerRun:
    """What one server did: start-up, memory and one LoadResult per (run, clients)."""

    label: str
    ready_seconds: float = float("nan")
    worker_rss: float = float("nan")
    tree_rss: float = float("nan")
    loads: dict[tuple[str, int], LoadResult] = field(default_factory=dict)
    repeat_client_ms: float = float("nan")
    repeat_server_ms: float = float("nan")


def squad_corpus(source: Path, paragraphs: int, folder: Path) -> tuple[Path, list[str]]:
    """Write the first ``paragraphs`` SQuAD paragraphs as corpus.jsonl.

    Returns the corpus file and the questions about those paragraphs (unique, shuffled with a
    fixed seed, so every server gets the same sequence).
    """
    squad = json.loads(source.read_text(encoding="utf-8"))
    folder.mkdir(parents=True, exist_ok=True)
    corpus, questions = folder / "corpus.jsonl", []
    with corpus.open("w", encoding="utf-8") as out:
        rows = (
            (article, number, paragraph)
            for article in squad["data"]
            for number, paragraph in enumerate(article["paragraphs"])
        )
        for article, number, paragraph in itertools.islice(rows, paragraphs):
            record = {
                "id": f"{article['title']}-{number:03d}",
                "text": paragraph["context"],
                "metadata": {"title": article["title"].replace("_", " ")},
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            questions.extend(qa["question"].strip() for qa in paragraph["qas"])
    questions = list(dict.fromkeys(q for q in questions if q))
    random.Random(7).shuffle(questions)
    return corpus, questions


def cached_build(config: Any, corpus: Path, cache: Path) -> tuple[Path, dict[str, Any]]:
    """Build the snapshot once per (config, corpus); later runs reuse it and its timings."""
    import hashlib

    from rag_model.build import build_snapshot

    key = hashlib.sha256(
        (json.dumps(config.to_dict(), sort_keys=True) + corpus.read_text()).encode()
    ).hexdigest()[:16]
    folder = cache / f"serving-{key}"
    stats_file = folder / "build.json"
    if stats_file.exists():
        return folder / "snapshot", json.loads(stats_file.read_text())
    built = build_snapshot(config, corpus, folder / "snapshot", progress=True)
    stats = {"chunks": built.chunk_count, **built.seconds}
    stats_file.write_text(json.dumps(stats))
    return built.snapshot_dir, stats


def register(config: Any, snapshot: Path, name: str) -> str:
    """Log and register ``snapshot``; return ``models:/name/version``."""
    import mlflow

    from rag_model.packaging.log import log_rag_model
    from rag_model.packaging.registry import PRODUCTION, register_version, set_alias

    with mlflow.start_run(run_name=name):
        info = log_rag_model(config, snapshot)
    ref = register_version(info.model_uri, name)
    set_alias(name, PRODUCTION, ref.version)
    return ref.uri


def in_process_ms(uri: str, questions: list[str]) -> tuple[float, float]:
    """p50 ms of pyfunc ``predict`` (a DataFrame of one row) and of ``pipeline.answer``."""
    import mlflow.pyfunc
    import pandas as pd

    model = mlflow.pyfunc.load_model(uri)
    pipeline = model.unwrap_python_model().pipeline
    pipeline.warm_up()
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    model.predict(pd.DataFrame({"question": ["warm up"]}))
    half = len(questions) // 2
    predict, answer = [], []
    for question in questions[:half]:
        started = time.perf_counter()
        model.predict(pd.DataFrame({"question": [question]}))
        predict.append((time.perf_counter() - started) * 1000)
    for question in questions[half:]:
        started = time.perf_counter()
        pipeline.answer(question)
        answer.append((time.perf_counter() - started) * 1000)
    pipeline.index.close()
    return statistics.median(predict), statistics.median(answer)


def start_server(kind: str, uri: str, port: int, workers: int, env: dict[str, str]) -> Any:
    """Start gunicorn (``ours``) or ``mlflow models serve`` on ``uri``; return the process."""
    if kind == "ours":
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "serving/gunicorn.conf.py",
            "serving:create_app()",
        ]
        env = {**env, "RAG_MODEL_URI": uri, "RAG_BIND": f"127.0.0.1:{port}"}
        env["RAG_WORKERS"] = str(workers)
    else:
        command = [
            str(Path(sys.executable).with_name("mlflow")),
            "models",
            "serve",
            "-m",
            uri,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            str(workers),
        ]
    log = open(Path(env["BENCH_LOG_DIR"]) / f"{kind}-{port}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        command, cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def request_for(kind: str) -> tuple[str, Any]:
    """The route and body builder: /v1/query for ours, /invocations for mlflow."""
    if kind == "ours":
        return "/v1/query", lambda q: {"question": q}
    return "/invocations", lambda q: {"dataframe_split": {"columns": ["question"], "data": [[q]]}}


def with_repeats(fresh: Iterator[str], share: float, seed: int = 11) -> Iterator[str]:
    """Questions where ``share`` of them repeat one asked before in this stream."""
    rng, asked = random.Random(seed), []
    while True:
        if asked and rng.random() < share:
            yield rng.choice(asked)
        else:
            question = next(fresh)
            asked.append(question)
            yield question


def bench_server(
    label: str,
    kind: str,
    uri: str,
    port: int,
    workers: int,
    env: dict[str, str],
    questions: list[str],
    levels: list[int],
    seconds: float,
    repeat_share: float,
) -> ServerRun:
    """Start one server, time it to ready, load it, measure memory, stop it."""
    run = ServerRun(label)
    process = start_server(kind, uri, port, workers, env)
    try:
        run.ready_seconds = wait_ready(port, "/ready" if kind == "ours" else "/ping", process)
        path, body = request_for(kind)
        warm = iter(questions[-200:])  # never asked in the measured runs
        deadline = time.perf_counter() + 120
        successes = 0
        while successes < 4 * workers and time.perf_counter() < deadline:  # every worker
            successes = successes + 1 if post(port, path, body(next(warm)))[0] == 200 else 0
        unique = iter(questions[:-200])
        for clients in levels:
            run.loads[("unique", clients)] = run_load(port, path, body, unique, clients, seconds)
        repeated = with_repeats(unique, repeat_share)
        for clients in levels:
            run.loads[("repeated", clients)] = run_load(
                port, path, body, repeated, clients, seconds
            )
        run.worker_rss, run.tree_rss = worker_rss(process.pid, workers)
        run.repeat_client_ms, run.repeat_server_ms = repeated_question_ms(
            port, path, body(questions[0])
        )
    finally:
        stop(process)
    return run


def repeated_question_ms(port: int, path: str, body: dict[str, Any]) -> tuple[float, float]:
    """p50 of one question asked 200 times in a row: at the client, and at the server."""
    client, server = [], []
    post(port, path, body)
    for _ in range(200):
        started = time.perf_counter()
        status, _, timing = post(port, path, body)
        client.append((time.perf_counter() - started) * 1000)
        measured = server_ms(timing)
        if status == 200 and measured is not None:
            server.append(measured)
    return statistics.median(client), (statistics.median(server) if server else float("nan"))


def print_tables(runs: list[ServerRun], levels: list[int], extra: dict[str, Any]) -> None:
    """The Markdown tables: per server and level, then the ratios and the targets."""
    print("\n| server | questions | clients | req/s | p50 ms | p95 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in ("unique", "repeated"):
        for run in runs:
            for clients in levels:
                load = run.loads.get((kind, clients))
                if load is None:
                    continue
                print(
                    f"| {run.label} | {kind} | {clients} | {load.rate:.1f} | "
                    f"{load.percentile(0.5):.1f} | {load.percentile(0.95):.1f} | "
                    f"{load.percentile(0.99):.1f} | {load.errors} |"
                )
    print(
        "\n| server | start to ready s | worker RSS MiB | all processes MiB | "
        "repeated question p50 ms (client / server) |"
    )
    print("|---|---|---|---|---|")
    for run in runs:
        print(
            f"| {run.label} | {run.ready_seconds:.1f} | {run.worker_rss:.0f} | "
            f"{run.tree_rss:.0f} | {run.repeat_client_ms:.2f} / {run.repeat_server_ms:.2f} |"
        )
    ours, same, seed = runs
    print("\n| ratio (unique questions) | clients | req/s | p99 |")
    print("|---|---|---|---|")
    for clients in levels:
        for other in (same, seed):
            a, b = ours.loads[("unique", clients)], other.loads[("unique", clients)]
            print(
                f"| (a) / {other.label.split(' ')[0]} | {clients} | {a.rate / b.rate:.2f}x | "
                f"{a.percentile(0.99) / b.percentile(0.99):.2f}x |"
            )
    errors = sum(load.errors for run in runs for load in run.loads.values())
    for run in runs:
        for load in run.loads.values():
            if load.first_error:
                print(f"\n{run.label}: first error {load.first_error}")
                break
    print(f"\nerrors in all runs: {errors}")
    for line in extra["notes"]:
        print(line)


@click.command()
@click.option("--squad", default="../shared/data/squad_v1.1/dev-v1.1.json", show_default=True)
@click.option("--paragraphs", default=2000, show_default=True)
@click.option("--workers", default=2, show_default=True)
@click.option("--seconds", default=8.0, show_default=True, help="per load level")
@click.option("--levels", default="1,4,16,64", show_default=True)
@click.option("--repeat-share", default=0.5, show_default=True)
@click.option("--backend", type=click.Choice(["onnx", "onnx-int8", "torch"]), default="onnx")
@click.option("--cache", default=".rag-model/bench-cache", show_default=True)
@click.option("--only", default="a,b,c", show_default=True, help="servers to run")
@click.option("--threads", default=1, show_default=True, help="gunicorn threads (ours)")
@click.option("--batch-wait-ms", default=0, show_default=True, help="ours: RAG_BATCH_WAIT_MS")
@click.option("--in-process/--no-in-process", default=True, help="time predict in this process")
def main(
    squad: str,
    paragraphs: int,
    workers: int,
    seconds: float,
    levels: str,
    repeat_share: float,
    backend: str,
    cache: str,
    only: str,
    threads: int,
    batch_wait_ms: int,
    in_process: bool,
) -> None:
    """Run the three servers and print the tables."""
    import mlflow

    from rag_model.config import RagConfig

    level_list = [int(level) for level in levels.split(",")]
    work = Path(tempfile.mkdtemp(prefix="rag-bench-serving-"))
    corpus, questions = squad_corpus(Path(squad), paragraphs, work / "data")
    production = RagConfig.from_dict({"embedding": {"backend": backend}})
    seed = RagConfig.from_dict(SEED_CONFIG)
    notes = []
    snapshots = {}
    for label, config in (("production", production), ("seed", seed)):
        snapshot, stats = cached_build(config, corpus, Path(cache))
        snapshots[label] = snapshot
        notes.append(
            f"index build ({label}, {config.embedding.backend}): {stats['chunks']} chunks, "
            f"embed {stats['chunks'] / stats['embed_seconds']:.1f} chunks/s, then Chroma + "
            f"BM25 (+ sentence vectors when extractive) {stats['index_seconds']:.0f} s, total "
            f"{stats['build_seconds']:.0f} s ({stats['chunks'] / stats['build_seconds']:.1f} "
            "chunks/s)"
        )

    tracking = f"sqlite:///{work / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = tracking
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(tracking)
    experiment = mlflow.create_experiment("bench", artifact_location=(work / "mlruns").as_uri())
    mlflow.set_experiment(experiment_id=experiment)
    uris = {
        "production": register(production, snapshots["production"], "rag-bench"),
        "seed": register(seed, snapshots["seed"], "rag-bench-seed"),
    }
    probe = questions[-260:-200]
    for label in ("production", "seed") if in_process else ():
        predict_ms, answer_ms = in_process_ms(uris[label], probe)
        notes.append(
            f"in-process p50 ({label}): pyfunc predict {predict_ms:.1f} ms, "
            f"pipeline.answer {answer_ms:.1f} ms"
        )

    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking,
        "MLFLOW_REGISTRY_URI": tracking,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "RAG_THREADS": str(threads),
        "RAG_BATCH_WAIT_MS": str(batch_wait_ms),
        "BENCH_LOG_DIR": str(work),
        "PYTHONPATH": str(PROJECT),
        # mlflow models serve runs "uvicorn" from PATH: this interpreter's
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    chosen = set(only.split(","))
    plan = [
        ("a", f"(a) ours, gunicorn, {backend}", "ours", "models:/rag-bench@production"),
        ("b", "(b) mlflow serve, same version", "mlflow", "models:/rag-bench@production"),
        ("c", "(c) mlflow serve, seed torch", "mlflow", uris["seed"]),
    ]
    runs = []
    for key, label, kind, uri in plan:
        if key not in chosen:
            continue
        print(f"running {label} ...", file=sys.stderr)
        runs.append(
            bench_server(
                label,
                kind,
                uri,
                18000 + len(runs),
                workers,
                env,
                questions,
                level_list,
                seconds,
                repeat_share,
            )
        )
    print(
        f"\n{paragraphs} SQuAD dev paragraphs, {len(questions)} questions, {workers} workers "
        f"per server, {seconds:.0f} s per level, {os.cpu_count()} CPUs; ours with "
        f"RAG_THREADS={threads} RAG_BATCH_WAIT_MS={batch_wait_ms}; logs in {work}"
    )
    if len(runs) == 3:
        print_tables(runs, level_list, {"notes": notes})
    else:
        print_tables_partial(runs, level_list, notes)


def print_tables_partial(runs: list[ServerRun], levels: list[int], notes: list[str]) -> None:
    """The per-server tables only (when --only picks fewer than three servers)."""
    print("\n| server | questions | clients | req/s | p50 ms | p95 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for run in runs:
        for (kind, clients), load in run.loads.items():
            print(
                f"| {run.label} | {kind} | {clients} | {load.rate:.1f} | "
                f"{load.percentile(0.5):.1f} | {load.percentile(0.95):.1f} | "
                f"{load.percentile(0.99):.1f} | {load.errors} |"
            )
        print(
            f"\n{run.label}: ready in {run.ready_seconds:.1f} s, worker RSS "
            f"{run.worker_rss:.0f} MiB, repeated question p50 {run.repeat_client_ms:.2f} ms "
            f"(server {run.repeat_server_ms:.2f} ms)"
        )
    for line in notes:
        print(line)


if __name__ == "__main__":
    main()
