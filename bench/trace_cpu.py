"""CPU per served trace, no server: the request thread's share and the whole process's.

Usage: python -m bench.trace_cpu [--answers 300] [--repeats 3] [--modes off,mlflow,recorded]
                                 [--store-dir DIR] [--profile MODE] [--tracking-server]

A hybrid pipeline (hash embedder, echo generator: no torch, so the tracing cost is not hidden
in encoder noise) over the sample corpus answers ``--answers`` distinct questions (eval
questions with a number appended) three ways, each in a fresh process: untraced (``off``);
``mlflow``: the served path before issue 15's rework (``MlflowTracer``: live MLflow spans in the
request thread, MLflow's async export queue, one write per trace); ``recorded``: the served
path now (``RecordingTracer`` records plain span data, ``TraceExporter`` builds and writes the
trace in its thread). Traces go to a new SQLite store (on disk under ``--store-dir``, default
the system temp directory, as the serving bench does). Prints per mode the medians over
``--repeats`` processes of the request thread's CPU and the process's CPU (export included,
after flushing) per answer, and the difference to ``off``: the CPU one trace costs.
``--profile MODE`` prints that mode's top cProfile entries instead. ``--tracking-server``
sends the traces to a ``mlflow server`` started for the run (over HTTP, span files through its
artifact proxy) instead: the CPU is then this process's only, what a serving host pays.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
MODES = ("off", "mlflow", "recorded")


def measure(
    mode: str, answers: int, store_dir: str, profile: bool, tracking_uri: str = ""
) -> dict[str, float]:
    """One process's run of ``mode``: CPU ms per answer, request thread and whole process."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from rag_model import tracing
    from rag_model.build import build_snapshot
    from rag_model.config import RagConfig
    from rag_model.pipeline import RagPipeline

    work = Path(tempfile.mkdtemp(prefix="rag-trace-cpu-", dir=store_dir))
    config = RagConfig.from_dict(
        {
            "embedding": {"model": "hash-embedder"},
            "generation": {"generator": "echo"},
            "retrieval": {"mode": "hybrid", "k": 4},
        }
    )
    build_snapshot(config, SAMPLE / "corpus.jsonl", work / "snapshot")
    pipeline = RagPipeline.from_snapshot(config, work / "snapshot")
    rows = [json.loads(line) for line in (SAMPLE / "eval.jsonl").read_text().splitlines()]
    questions = [f"{rows[i % len(rows)]['question']} ({i})" for i in range(answers + 20)]

    flush = lambda: None  # noqa: E731
    traced = lambda: tracing.use_tracer(None)  # noqa: E731
    if mode != "off":
        import mlflow

        uri = tracking_uri or f"sqlite:///{work / 'mlflow.db'}"
        os.environ["MLFLOW_TRACKING_URI"] = uri
        mlflow.set_tracking_uri(uri)
        if tracking_uri:  # the server's mlflow-artifacts: location
            experiment = mlflow.create_experiment(f"bench-{work.name}")
        else:
            experiment = mlflow.create_experiment(
                "bench", artifact_location=(work / "art").as_uri()
            )
        from rag_model.packaging.mlflow_tracer import TraceContext, trace_context

        context = TraceContext(
            tags={"rag.source": "serving", "rag.model_name": "bench", "rag.model_version": "1"},
            client_request_id="bench",
            model_id=None,
            experiment_id=experiment,
            attributes={"cache_hit": False},
        )
        if mode == "mlflow":
            from contextlib import ExitStack

            from mlflow.tracing.provider import _get_trace_exporter, _get_tracer

            from rag_model.packaging.mlflow_tracer import MlflowTracer

            _get_tracer(__name__)  # as the server did: one write per trace, no span rows
            _get_trace_exporter()._store_supports_log_spans = False
            tracer = MlflowTracer()

            def traced():  # type: ignore[no-redef]
                stack = ExitStack()
                stack.enter_context(tracing.use_tracer(tracer))
                stack.enter_context(trace_context(context))
                return stack

            flush = mlflow.flush_trace_async_logging
        else:
            from rag_model.packaging.trace_export import TraceExporter

            exporter = TraceExporter()
            sink = exporter.sink(context)
            traced = lambda: tracing.use_tracer(tracing.RecordingTracer(sink))  # noqa: E731
            flush = exporter.flush

    for question in questions[:20]:  # warm: imports, first trace, caches
        with traced():
            pipeline.answer(question)
    flush()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    thread_cpu, process_cpu = time.thread_time(), time.process_time()
    for question in questions[20:]:
        with traced():
            pipeline.answer(question)
    thread_cpu = time.thread_time() - thread_cpu
    flush()
    process_cpu = time.process_time() - process_cpu
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
    return {"thread_ms": thread_cpu * 1000 / answers, "process_ms": process_cpu * 1000 / answers}


@click.command()
@click.option("--answers", type=int, default=300, show_default=True)
@click.option("--repeats", type=int, default=3, show_default=True)
@click.option("--modes", default=",".join(MODES), show_default=True)
@click.option("--store-dir", default=None, help="where the SQLite store goes [system temp]")
@click.option("--profile", type=click.Choice(MODES), default=None)
@click.option("--one", type=click.Choice(MODES), default=None, hidden=True)
@click.option("--tracking-server", is_flag=True, help="traces to a `mlflow server` over HTTP")
@click.option("--tracking-uri", default="", hidden=True)
def main(
    answers: int,
    repeats: int,
    modes: str,
    store_dir: str | None,
    profile: str | None,
    one: str | None,
    tracking_server: bool,
    tracking_uri: str,
) -> None:
    """Measure CPU per trace of each mode, each repeat in a fresh process."""
    store_dir = store_dir or tempfile.gettempdir()
    if one or profile:
        result = measure(one or profile, answers, store_dir, profile is not None, tracking_uri)  # type: ignore[arg-type]
        click.echo(json.dumps(result))
        return
    if tracking_server:
        from bench.loadgen import stop
        from bench.tracing_overhead import tracking_server

        work = Path(tempfile.mkdtemp(prefix="rag-trace-cpu-server-", dir=store_dir))
        server, tracking_uri = tracking_server(f"sqlite:///{work / 'mlflow.db'}", work)
        try:
            _compare(answers, repeats, modes, store_dir, tracking_uri)
        finally:
            stop(server)
        return
    _compare(answers, repeats, modes, store_dir, "")


def _compare(answers: int, repeats: int, modes: str, store_dir: str, tracking_uri: str) -> None:
    chosen = modes.split(",")
    if "off" not in chosen:
        raise click.BadParameter("off must be among the modes", param_hint="--modes")
    load = os.getloadavg()
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in chosen}
    for _ in range(repeats):
        for mode in chosen:  # interleaved, so load drifts hit every mode alike
            command = [sys.executable, "-m", "bench.trace_cpu", "--one", mode]
            command += ["--answers", str(answers), "--store-dir", store_dir]
            command += ["--tracking-uri", tracking_uri] if tracking_uri else []
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[mode].append(json.loads(out.strip().splitlines()[-1]))
    median = {
        mode: {key: statistics.median(r[key] for r in runs) for key in ("thread_ms", "process_ms")}
        for mode, runs in results.items()
    }
    off = median["off"]
    click.echo(f"`python -m bench.trace_cpu {' '.join(sys.argv[1:])}`\n")
    click.echo(
        f"{answers} answers per process, medians of {repeats} processes per mode; traces to "
        f"{tracking_uri or 'a SQLite store in ' + store_dir}; load average at start "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}, "
        f"{os.cpu_count()} CPUs\n"
    )
    click.echo(
        "| mode | request thread CPU ms / answer | + per trace | process CPU ms / answer "
        "(export included) | + per trace |"
    )
    click.echo("|---|---|---|---|---|")
    for mode in chosen:
        m = median[mode]
        thread = f"{m['thread_ms'] - off['thread_ms']:+.2f}" if mode != "off" else "—"
        process = f"{m['process_ms'] - off['process_ms']:+.2f}" if mode != "off" else "—"
        click.echo(
            f"| {mode} | {m['thread_ms']:.2f} | {thread} | {m['process_ms']:.2f} | {process} |"
        )


if __name__ == "__main__":
    main()
