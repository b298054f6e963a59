"""Our server against ``mlflow models serve`` and the seed-style model, medians of alternating runs.

Usage: python -m bench.serving_vs_mlflow [--seconds 15] [--repeats 3] [--clients 1,4,16,64]
                                         [--paragraphs 2000] [--quick]

Builds (cached under .rag-model/bench-cache) two models over the first ``--paragraphs`` SQuAD
v1.1 dev paragraphs (read from ../shared/data, never copied here) and registers them in a fresh
MLflow store:

- ``rag-bench``: the product's default config (``RagConfig()`` as it is at run time);
- ``rag-seed-style``: the realistic baseline (``bench/seed_style``, ported unchanged from
  ../shared/bench/seed_style): sentence-transformers MiniLM on torch at its default threads,
  Chroma of whole paragraphs (cosine, k=4), the retrieved sentence closest to the question from
  build-time sentence vectors.

Then runs three servers, each ``--repeats`` times in alternating order (a b c, c b a, a b c ...),
each start a fresh process with ``--workers`` workers and no thread settings:

- (a) ours: gunicorn with ``serving/gunicorn.conf.py`` on ``rag-bench@production``;
- (b) ``mlflow models serve --env-manager local`` on the identical version;
- (c) ``mlflow models serve --env-manager local`` on the seed-style model.

Each start is timed from process start to the first 200 answer, warmed up on questions never
measured, then driven by closed-loop clients (``bench/loadgen.py``) at each ``--clients``
level for ``--seconds``, all with the same sequence of unique SQuAD questions about those
paragraphs; the RSS of its whole process tree is read after the last level. Prints the
medians per server and level, start and memory, the in-process ceiling (single-thread
``pipeline.answer`` questions/s x cores, timed once before each round of runs) and the
ratios against the targets of issue 14 (the tables: ``bench/serving_report.py``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import platform
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from bench.loadgen import run_load, stop, wait_first_answer, worker_rss
from bench.serving_report import SERVERS, Ceiling, Level, Trial, report, run_order

PROJECT = Path(__file__).resolve().parents[1]
PRODUCT_NAME, SEED_NAME = "rag-bench", "rag-seed-style"
SQUAD_DEV = "data/squad_v1.1/dev-v1.1.json"
WARM_UP_QUESTIONS = 200  # the last ones: asked only while warming up, never measured
# thread settings the servers must not inherit from the shell running the benchmark
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
QUICK = {"paragraphs": 200, "seconds": 2.0, "repeats": 1}
FULL = {"paragraphs": 2000, "seconds": 15.0, "repeats": 3}
# seconds a server start costs besides its load levels (start, warm-up, stop): for the estimate
START_OVERHEAD_SECONDS = 20.0


def machine_lines(settings: dict[str, Any], load_at_start: Sequence[float]) -> list[str]:
    """What the numbers were measured on: CPU, memory, versions, load average, settings."""
    cpu = "unknown CPU"
    memory = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024**2:.0f} GiB"
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    versions = []
    for package in ("mlflow", "gunicorn", "uvicorn", "onnxruntime", "torch", "chromadb"):
        try:
            versions.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            pass
    start = ", ".join(f"{value:.2f}" for value in load_at_start)
    end = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        f"Machine: {cpu}, {os.cpu_count()} CPUs, {memory}, {platform.platform()}, "
        f"Python {platform.python_version()}; {', '.join(versions)}.",
        f"Load average (1, 5, 15 min) at the start: {start}; at the end: {end}.",
        "Settings: " + ", ".join(f"{key} {value}" for key, value in settings.items()) + ".",
    ]


# ---------------------------------------------------------------- corpus, builds, registry


@dataclass
class Corpus:
    """The SQuAD paragraphs in both models' formats, and the questions about them."""

    product_file: Path
    seed_docs: list[dict[str, str]]
    questions: list[str]  # unique, shuffled with a fixed seed
    targets: dict[str, str]  # question -> paragraph id


def shared_file(relative: str) -> Path:
    """``../shared/<relative>`` beside this checkout, or beside the main one for a worktree."""
    roots = [Path.cwd().parent, PROJECT.parent]
    try:
        common = subprocess.run(
            ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
            cwd=PROJECT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        roots.append(Path(common).parent.parent)  # <main checkout>/.git -> its parent
    except (OSError, subprocess.CalledProcessError):
        pass
    for root in roots:
        if (root / "shared" / relative).exists():
            return root / "shared" / relative
    return roots[0] / "shared" / relative


def squad_corpus(source: Path, paragraphs: int, folder: Path) -> Corpus:
    """The first ``paragraphs`` SQuAD paragraphs: corpus.jsonl for ours, records for the seed."""
    if not source.exists():
        raise click.ClickException(
            f"no SQuAD file at {source}; pass --squad PATH (dev-v1.1.json under ../shared/data)"
        )
    squad = json.loads(source.read_text(encoding="utf-8"))
    folder.mkdir(parents=True, exist_ok=True)
    product_file, seed_docs, targets = folder / "corpus.jsonl", [], {}
    rows = (
        (article, number, paragraph)
        for article in squad["data"]
        for number, paragraph in enumerate(article["paragraphs"])
    )
    with product_file.open("w", encoding="utf-8") as out:
        for article, number, paragraph in itertools.islice(rows, paragraphs):
            doc_id, title = f"{article['title']}-{number:03d}", article["title"].replace("_", " ")
            record = {"id": doc_id, "text": paragraph["context"], "metadata": {"title": title}}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            seed_docs.append({"id": doc_id, "source": title, "text": paragraph["context"]})
            for qa in paragraph["qas"]:
                targets.setdefault(qa["question"].strip(), doc_id)
    questions = [question for question in targets if question]
    random.Random(7).shuffle(questions)
    return Corpus(product_file, seed_docs, questions, targets)


def question_stream(questions: Sequence[str]) -> Iterator[str]:
    """``questions`` in order, then again with " (2)", " (3)" ... appended: never a repeat."""
    for round_number in itertools.count(1):
        for question in questions:
            yield question if round_number == 1 else f"{question} ({round_number})"


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def cached_product_build(config: Any, corpus: Path, cache: Path) -> tuple[Path, dict[str, Any]]:
    """Build the product's snapshot once per (config, corpus); later runs reuse it."""
    from rag_model.build import build_snapshot

    key = _key(json.dumps(config.to_dict(), sort_keys=True), corpus.read_text())
    folder = cache / f"serving-{key}"
    stats_file = folder / "build.json"
    if stats_file.exists():
        return folder / "snapshot", json.loads(stats_file.read_text())
    built = build_snapshot(config, corpus, folder / "snapshot", progress=True)
    stats = {"chunks": built.chunk_count, **built.seconds}
    stats_file.write_text(json.dumps(stats))
    return built.snapshot_dir, stats


def cached_seed_build(corpus: Corpus, cache: Path) -> tuple[Path, dict[str, Any]]:
    """Build the seed-style index once per (corpus, seed code); later runs reuse it."""
    from bench.seed_style import HERE, build_seed_index

    # the index depends on the build code and the sentence splitter, not on the model class
    code = "".join((HERE / name).read_text() for name in ("__init__.py", "seed_style_common.py"))
    folder = cache / f"seed-style-{_key(json.dumps(corpus.seed_docs), code)}"
    stats_file = folder / "build.json"
    if stats_file.exists():
        return folder / "build", json.loads(stats_file.read_text())
    probes = [(q, corpus.targets[q]) for q in corpus.questions[:200]]
    stats = build_seed_index(corpus.seed_docs, folder / "build", probes)
    stats_file.write_text(json.dumps(stats))
    return folder / "build", stats


def register_product(config: Any, snapshot: Path) -> str:
    """Log and register ``snapshot`` as ``rag-bench`` @production; return that URI."""
    import mlflow

    from rag_model.packaging.log import log_rag_model
    from rag_model.packaging.registry import PRODUCTION, register_version, set_alias

    with mlflow.start_run(run_name=PRODUCT_NAME):
        info = log_rag_model(config, snapshot)
    ref = register_version(info.model_uri, PRODUCT_NAME)
    set_alias(PRODUCT_NAME, PRODUCTION, ref.version)
    return f"models:/{PRODUCT_NAME}@{PRODUCTION}"


def single_thread_pipeline(uri: str) -> Any:
    """The served version's pipeline, loaded in this process with one encoder thread."""
    import mlflow.pyfunc

    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # the ONNX session reads it when it is created
    try:
        pipeline = mlflow.pyfunc.load_model(uri).unwrap_python_model().pipeline
        pipeline.warm_up()
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
        pipeline.answer("What is this warm-up question about?")
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved
    return pipeline


def time_answers(pipeline: Any, questions: Iterator[str], seconds: float) -> Ceiling:
    """``pipeline.answer`` one question after another for ``seconds`` (20 questions at least)."""
    answered, started = 0, time.perf_counter()
    while answered < 20 or time.perf_counter() - started < seconds:
        pipeline.answer(next(questions))
        answered += 1
    return Ceiling(answered, time.perf_counter() - started, os.cpu_count() or 1)


# ---------------------------------------------------------------- servers


@dataclass(frozen=True)
class Server:
    """How to start one of the three servers and ask it a question."""

    key: str
    command: list[str]
    env: dict[str, str]
    path: str
    body: Callable[[str], dict[str, Any]]


def free_port() -> int:
    """A free localhost port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mlflow_body(question: str) -> dict[str, Any]:
    return {"dataframe_split": {"columns": ["question"], "data": [[question]]}}


def _ours_body(question: str) -> dict[str, Any]:
    return {"question": question}


def make_server(key: str, uri: str, workers: int, env: dict[str, str]) -> Server:
    """(a) gunicorn with serving/gunicorn.conf.py; (b), (c) ``mlflow models serve``."""
    if key == "a":
        command = [sys.executable, "-m", "gunicorn", "-c", "serving/gunicorn.conf.py"]
        command.append("serving:create_app()")
        env = {**env, "RAG_MODEL_URI": uri, "RAG_WORKERS": str(workers)}
        return Server(key, command, env, "/v1/query", _ours_body)
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    command = [mlflow, "models", "serve", "-m", uri, "--env-manager", "local"]
    command += ["-h", "127.0.0.1", "-w", str(workers)]
    return Server(key, command, env, "/invocations", _mlflow_body)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_trial(
    server: Server,
    repeat: int,
    levels: Sequence[int],
    seconds: float,
    warm_up: Iterator[str],
    questions: Sequence[str],
    workers: int,
    logs: Path,
    warm_up_seconds: float,
) -> Trial:
    """Start ``server``, time it to its first answer, warm it up, load it, read RSS, stop it."""
    trial = Trial(server.key, repeat)
    port = free_port()
    command = list(server.command)
    env = dict(server.env)
    if server.key == "a":
        env["RAG_BIND"] = f"127.0.0.1:{port}"
    else:
        command += ["-p", str(port)]
    log_file = logs / f"{server.key}-{repeat + 1}.log"
    with log_file.open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=PROJECT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            trial.start_seconds = wait_first_answer(
                port, server.path, server.body(next(warm_up)), process, started
            )
            # every worker loaded and warm before measuring: concurrent questions never measured
            run_load(port, server.path, server.body, warm_up, 2 * workers, warm_up_seconds)
            measured = question_stream(questions)  # the same sequence for every trial
            cpu, wall = _cpu_seconds(), time.perf_counter()
            for clients in levels:
                load = run_load(port, server.path, server.body, measured, clients, seconds)
                trial.levels[clients] = Level.from_load(load)
            trial.client_cpu = (_cpu_seconds() - cpu) / (time.perf_counter() - wall)
            trial.tree_rss = worker_rss(process.pid, workers)[1]
            trial.load_average = os.getloadavg()[0]
        except Exception as exc:
            tail = log_file.read_text(errors="replace")[-3000:]
            raise click.ClickException(
                f"{SERVERS[server.key]} failed ({exc}); log {log_file}:\n{tail}"
            ) from exc
        finally:
            stop(process)
    return trial


# ---------------------------------------------------------------- command line


def parse_clients(value: str) -> list[int]:
    """``"1,4,16,64"`` -> ``[1, 4, 16, 64]``; each must be a positive integer."""
    try:
        levels = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"must be integers separated by commas, got {value!r}") from None
    if not levels or min(levels) <= 0:
        raise click.BadParameter(f"must be integers > 0 separated by commas, got {value!r}")
    return levels


def resolve(quick: bool, **given: Any) -> dict[str, Any]:
    """The options given, else the --quick or the full-run defaults."""
    defaults = QUICK if quick else FULL
    resolved = {key: given[key] if given.get(key) is not None else defaults[key] for key in FULL}
    if resolved["seconds"] <= 0:
        raise click.BadParameter(f"must be > 0, got {resolved['seconds']}", param_hint="--seconds")
    for name in ("repeats", "paragraphs"):
        if resolved[name] <= 0:
            raise click.BadParameter(f"must be > 0, got {resolved[name]}", param_hint=f"--{name}")
    return resolved


def estimate_seconds(runs: int, levels: Sequence[int], seconds: float, warm_up: float) -> float:
    """Roughly how long the servers' part of a run takes (builds and the ceiling excluded)."""
    return runs * (len(levels) * seconds + warm_up + START_OVERHEAD_SECONDS)


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--seconds", type=float, help="per load level [15; --quick 2]")
@click.option("--repeats", type=int, help="starts of each server, alternating [3; --quick 1]")
@click.option("--clients", default="1,4,16,64", show_default=True, help="closed-loop levels")
@click.option("--paragraphs", type=int, help="SQuAD dev paragraphs [2000; --quick 200]")
@click.option("--quick", is_flag=True, help="smoke run: 200 paragraphs, 2 s per level, 1 repeat")
@click.option("--workers", default=2, show_default=True, help="workers per server")
@click.option("--warm-up-seconds", default=3.0, show_default=True, help="per start, unmeasured")
@click.option("--squad", help="SQuAD v1.1 dev JSON [../shared/data/squad_v1.1/dev-v1.1.json]")
@click.option("--cache", default=".rag-model/bench-cache", show_default=True)
@click.option("--only", default="a,b,c", show_default=True, help="servers to run")
@click.option("--ceiling/--no-ceiling", default=True, help="time pipeline.answer in process")
@click.option("--threads", type=int, help="(a): RAG_THREADS (default: the product's)")
@click.option("--batch-wait-ms", type=int, help="(a): RAG_BATCH_WAIT_MS (default: the product's)")
def main(
    seconds: float | None,
    repeats: int | None,
    clients: str,
    paragraphs: int | None,
    quick: bool,
    workers: int,
    warm_up_seconds: float,
    squad: str | None,
    cache: str,
    only: str,
    ceiling: bool,
    threads: int | None,
    batch_wait_ms: int | None,
) -> None:
    """Build, register, run the servers in alternating order and print the tables."""
    options = resolve(quick, seconds=seconds, repeats=repeats, paragraphs=paragraphs)
    levels = parse_clients(clients)
    chosen = [key for key in SERVERS if key in only.split(",")]
    if not chosen:
        raise click.BadParameter(f"pick some of a,b,c, got {only!r}", param_hint="--only")
    shell_env = dict(os.environ)  # before this process changes anything
    load_at_start = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="rag-bench-serving-"))

    import mlflow

    from bench.seed_style import register_seed_model
    from rag_model.config import RagConfig

    def say(message: str) -> None:
        click.echo(f"[{time.strftime('%H:%M:%S')}] {message}", err=True)

    source = Path(squad) if squad else shared_file(SQUAD_DEV)
    corpus = squad_corpus(source, options["paragraphs"], work / "data")
    if len(corpus.questions) <= WARM_UP_QUESTIONS:
        raise click.ClickException(
            f"{len(corpus.questions)} questions: too few; raise --paragraphs"
        )
    measured = corpus.questions[:-WARM_UP_QUESTIONS]
    config = RagConfig()
    notes = []
    if "a" in chosen or "b" in chosen:
        backend = config.embedding.backend
        say(f"building the default-config model ({backend}; cached for later runs) ...")
        snapshot, stats = cached_product_build(config, corpus.product_file, Path(cache))
        notes.append(
            f"(a), (b): the default config ({config.embedding.backend} encoder, "
            f"{config.retrieval.mode} retrieval, k={config.retrieval.k}, "
            f"{config.generation.generator} answers), {stats['chunks']} chunks, built in "
            f"{stats['build_seconds']:.0f} s."
        )
    if "c" in chosen:
        say("building the seed-style index (cached for later runs) ...")
        seed_build, seed_stats = cached_seed_build(corpus, Path(cache))
        notes.append(
            f"(c): seed-style, {seed_stats['paragraphs']} paragraphs, "
            f"{seed_stats['sentences']} sentences, retrieval recall@4 of 200 of the questions "
            f"{seed_stats['recall_at_4']:.2f}."
        )

    tracking = f"sqlite:///{work / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(tracking)
    os.environ["MLFLOW_TRACKING_URI"] = tracking
    experiment = mlflow.create_experiment("bench", artifact_location=(work / "mlruns").as_uri())
    mlflow.set_experiment(experiment_id=experiment)
    say("registering ...")
    uris = {}
    if "a" in chosen or "b" in chosen:
        uris["a"] = uris["b"] = register_product(config, snapshot)
    if "c" in chosen:
        uris["c"] = register_seed_model(seed_build, SEED_NAME)

    pipeline = None
    if ceiling and "a" in chosen:
        say("loading the default-config version in process (one thread) ...")
        pipeline = single_thread_pipeline(uris["a"])
    ceiling_questions = question_stream(measured)  # on, not again: a repeat would be cached

    env = {key: value for key, value in shell_env.items() if key not in THREAD_VARIABLES}
    env.update(
        MLFLOW_TRACKING_URI=tracking,
        MLFLOW_REGISTRY_URI=tracking,
        PYTHONPATH=str(PROJECT),
        # mlflow models serve runs "uvicorn" from PATH: this interpreter's
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{shell_env.get('PATH', '')}",
    )
    if threads is not None:
        env["RAG_THREADS"] = str(threads)
    if batch_wait_ms is not None:
        env["RAG_BATCH_WAIT_MS"] = str(batch_wait_ms)
    servers = {key: make_server(key, uris[key], workers, env) for key in chosen}
    order = run_order(chosen, options["repeats"])
    estimate = estimate_seconds(len(order), levels, options["seconds"], warm_up_seconds)
    estimate += options["repeats"] * options["seconds"] if pipeline is not None else 0
    say(f"{len(order)} server runs, about {estimate / 60:.0f} min; logs in {work}")
    warm_up = question_stream(corpus.questions[-WARM_UP_QUESTIONS:])
    trials, ceilings = [], []
    for number, (repeat, key) in enumerate(order, 1):
        if pipeline is not None and (number == 1 or order[number - 2][0] != repeat):
            # once per round, next to the servers it is compared with (the load drifts)
            ceilings.append(time_answers(pipeline, ceiling_questions, options["seconds"]))
            say(f"in process, one thread: {ceilings[-1].per_thread:.1f} questions/s")
        say(f"run {number}/{len(order)}: {SERVERS[key]} ...")
        trial = run_trial(
            servers[key],
            repeat,
            levels,
            options["seconds"],
            warm_up,
            measured,
            workers,
            work,
            warm_up_seconds,
        )
        say(
            f"  first answer {trial.start_seconds:.1f} s; req/s "
            + ", ".join(f"{c}: {level.rate:.1f}" for c, level in trial.levels.items())
        )
        trials.append(trial)

    settings = {
        "paragraphs": options["paragraphs"],
        "questions": f"{len(measured)} unique",
        "seconds per level": options["seconds"],
        "repeats": options["repeats"],
        "workers per server": workers,
        "warm-up s": warm_up_seconds,
        "thread variables removed from the servers' environment": ", ".join(THREAD_VARIABLES),
    }
    command = " ".join(["python -m bench.serving_vs_mlflow", *sys.argv[1:]])
    header = [
        f"`{command}`",
        "",
        *machine_lines(settings, load_at_start),
        *notes,
    ]
    if pipeline is not None:
        pipeline.index.close()
    click.echo(report(trials, levels, ceilings, header))


if __name__ == "__main__":
    main()
