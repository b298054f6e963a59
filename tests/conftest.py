"""Fixtures shared by every tier: sample data, temporary MLflow stores, injected models, servers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from rag_model.config import RagConfig
from rag_model.offline import apply_offline_defaults
from tests.ram import database_dir

# the test suite is a program like the entry points: it and every process it starts run offline
apply_offline_defaults()
# builds started by the CLI default to the project's embedding cache (.rag-model/): tests build
# without one unless they name a cache file, so no test reads vectors another run left behind
os.environ.setdefault("RAG_EMBEDDING_CACHE", "none")

PROJECT = Path(__file__).resolve().parents[1]
SAMPLE_CORPUS = PROJECT / "data" / "sample" / "corpus.jsonl"
SAMPLE_EVAL = PROJECT / "data" / "sample" / "eval.jsonl"
FAKE_CONFIG = {"embedding": {"model": "hash-embedder"}, "generation": {"generator": "echo"}}
# (name, type, parent name) of each span of one hybrid answer, in start order
ANSWER_SPANS = [
    ("rag.answer", "CHAIN", None),
    ("rag.embed_query", "EMBEDDING", "rag.answer"),
    ("rag.retrieve", "RETRIEVER", "rag.answer"),
    ("rag.retrieve.dense", "RETRIEVER", "rag.retrieve"),
    ("rag.retrieve.lexical", "RETRIEVER", "rag.retrieve"),
    ("rag.retrieve.fuse", "RERANKER", "rag.retrieve"),
    ("rag.generate", "CHAIN", "rag.answer"),
]


def span_tree(trace: Any) -> list[tuple[str, str, str | None]]:
    """(name, type, parent name) of each span of an MLflow trace, in its order."""
    by_id = {span.span_id: span for span in trace.data.spans}
    return [
        (s.name, s.span_type, by_id[s.parent_id].name if s.parent_id else None)
        for s in trace.data.spans
    ]


@pytest.fixture(scope="module")
def hybrid_fake_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The fake config (hash embedder, echo generator), hybrid, over the sample corpus."""
    from rag_model.build import build_snapshot
    from rag_model.pipeline import RagPipeline

    config = RagConfig.from_dict({**FAKE_CONFIG, "retrieval": {"mode": "hybrid"}})
    root: Path = tmp_path_factory.mktemp("hybrid-fake")
    build_snapshot(config, SAMPLE_CORPUS, root / "snapshot")
    return RagPipeline.from_snapshot(config, root / "snapshot")


def chroma_contents(snapshot: Path, scratch: Path) -> dict[str, Any]:
    """A snapshot's Chroma records (ids, documents, metadatas, embeddings), sorted by id."""
    import chromadb
    import numpy as np
    from chromadb.config import Settings

    from rag_model.index import CHROMA_DIR, COLLECTION_NAME

    # Chroma writes into the folder it opens: read a copy, the snapshot stays verifiable
    shutil.copytree(snapshot / CHROMA_DIR, scratch)
    client = chromadb.PersistentClient(str(scratch), settings=Settings(anonymized_telemetry=False))
    try:
        found = client.get_collection(COLLECTION_NAME).get(
            include=["embeddings", "documents", "metadatas"]
        )
    finally:
        client.close()
    order = np.argsort(found["ids"])
    return {
        "ids": [found["ids"][i] for i in order],
        "documents": [found["documents"][i] for i in order],
        "metadatas": [found["metadatas"][i] for i in order],
        "embeddings": np.asarray(found["embeddings"])[order],
    }


@pytest.fixture
def fake_config() -> RagConfig:
    """Hash embedder + echo generator: no torch, builds the sample corpus in about a second."""
    return RagConfig.from_dict(FAKE_CONFIG)


def use_tracking_store(root: Path) -> str:
    """Point MLflow (this process and children) at a new SQLite store under ``root``."""
    import mlflow

    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{database_dir(root) / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)  # also exports MLFLOW_REGISTRY_URI to child processes
    # artifacts under root too, not in the current directory
    mlflow.set_experiment(experiment_id=_experiment(root, uri))
    return uri


def _experiment(root: Path, uri: str) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    existing = client.get_experiment_by_name("tests")
    if existing:
        return existing.experiment_id
    return client.create_experiment("tests", artifact_location=(root / "artifacts").as_uri())


@pytest.fixture
def tracking_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh SQLite tracking + registry store for one test."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    uri = use_tracking_store(tmp_path / "mlflow")
    yield uri
    if mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]


@pytest.fixture
def use_tracking_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], None]]:
    """Call it with a live tracking server's URL and an experiment name to use them.

    This process and its children then log runs, registry and artifacts there; the environment
    and MLflow's tracking URI are restored after the test.
    """
    import mlflow

    def use(url: str, experiment: str) -> None:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        monkeypatch.setenv("MLFLOW_REGISTRY_URI", url)
        monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
        mlflow.set_tracking_uri(url)
        mlflow.set_registry_uri(url)
        mlflow.set_experiment(experiment)  # on the server, not an id left by another test

    yield use
    if mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]


def invoke_cli(*args: str) -> Any:
    """Run the ``rag-model`` command in this process (click's runner); exceptions propagate."""
    from click.testing import CliRunner

    from experiments.cli import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def wait_until_http_ok(
    url: str, process: subprocess.Popen, log: Path, timeout: float = 180
) -> requests.Response:
    """Poll ``url`` until it answers 200; fail with the log if the process exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:4]} exited with {process.returncode}: {_tail(log)}")
        try:
            response = requests.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except requests.RequestException:  # not up yet, or too busy to answer
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready in {timeout} s: {_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return log.read_text()[-4000:]
    except OSError:
        return ""


def stop_process(process: subprocess.Popen) -> None:
    """Terminate a test's server process; kill it if it has not exited after 30 s."""
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# the command the Dockerfile's CMD and the Kubernetes example run (tests/test_deploy.py checks)
GUNICORN_ARGS = ["-c", "serving/gunicorn.conf.py", "serving:create_app()"]


def require_tool(name: str, package: str) -> str:
    """The path of the program ``name``, or a test failure saying which Debian package has it."""
    # Debian puts daemons (nginx) in /usr/sbin, which is not on a non-root user's PATH
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail(
            f"{name} is not installed: apt-get install -y {package} (.ci/run installs it)",
            pytrace=False,
        )
    return path


NO_PERSISTENCE = ["--save", "", "--appendonly", "no"]


class RedisServer:
    """A real ``redis-server`` on a free localhost port, no persistence; ``stop()`` ends it."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        binary = require_tool("redis-server", "redis-server")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", *NO_PERSISTENCE],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        import redis

        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.05)
        self.client = client

    def stop(self) -> None:
        self.client.close()
        stop_process(self.process)


class Server:
    """A real gunicorn process on a free localhost port; stopped by the fixture."""

    def __init__(self, env: dict[str, str], workers: int = 2) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(env.get("RAG_TEST_LOG", os.devnull))
        if "MLFLOW_TRACKING_URI" in env:  # the registry lives in the same store
            env = {"MLFLOW_REGISTRY_URI": env["MLFLOW_TRACKING_URI"], **env}
        full_env = {
            **os.environ,
            # no traces unless a test asks: a traced worker imports MLflow (seconds of start)
            "RAG_TRACE_SAMPLE_RATIO": "0",
            **env,
            "RAG_BIND": f"127.0.0.1:{self.port}",
            "RAG_WORKERS": str(workers),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", *GUNICORN_ARGS],
            cwd=PROJECT,
            env=full_env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 180) -> dict:
        return wait_until_http_ok(f"{self.url}/ready", self.process, self.log, timeout).json()

    def logs(self) -> str:
        return _tail(self.log)

    def stop(self) -> None:
        stop_process(self.process)


@contextmanager
def serving_production(model: RegisteredModel, log_dir: Path, **settings: str) -> Iterator[Server]:
    """A ready gunicorn server on ``models:/rag-model@production`` of ``model``; stopped after."""
    running = Server(
        {
            "MLFLOW_TRACKING_URI": model.tracking_uri,
            "RAG_MODEL_URI": "models:/rag-model@production",
            "RAG_TEST_LOG": str(log_dir / "server.log"),
            **settings,
        }
    )
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


class RegisteredModel:
    """A real MiniLM model version of the sample corpus in its own SQLite store."""

    def __init__(self, tracking_uri: str, name: str, version: str, model_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self.name = name
        self.version = version
        self.model_uri = model_uri

    def activate(self) -> None:
        """Make this model's store the current MLflow store (in-process and for children)."""
        import mlflow

        os.environ["MLFLOW_TRACKING_URI"] = self.tracking_uri
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)  # also exports MLFLOW_REGISTRY_URI


def register_model(root: Path, config: RagConfig, name: str = "rag-model") -> RegisteredModel:
    """Build the sample corpus with ``config``, log it, register it and point @production at it."""
    import mlflow

    from rag_model.build import build_snapshot
    from rag_model.packaging.log import log_rag_model
    from rag_model.packaging.registry import PRODUCTION, register_version, set_alias

    built = build_snapshot(config, SAMPLE_CORPUS, root / "snapshot")
    uri = use_tracking_store(root / "mlflow")
    with mlflow.start_run():
        info = log_rag_model(config, built.snapshot_dir)
    ref = register_version(info.model_uri, name)
    set_alias(name, PRODUCTION, ref.version)
    return RegisteredModel(uri, name, ref.version, info.model_uri)


@pytest.fixture(scope="session")
def minilm_model(tmp_path_factory: pytest.TempPathFactory) -> RegisteredModel:
    """Built once per session with real MiniLM + Chroma, logged, registered, @production."""
    return register_model(tmp_path_factory.mktemp("minilm"), RagConfig())


@pytest.fixture(scope="session")
def fake_registered_model(tmp_path_factory: pytest.TempPathFactory) -> RegisteredModel:
    """Hash embedder + echo generator (no torch: workers start fast), registered @production."""
    return register_model(tmp_path_factory.mktemp("fake-model"), RagConfig.from_dict(FAKE_CONFIG))


def serve_in_thread(app: object) -> tuple[object, str]:
    """Serve a WSGI ``app`` on a free local port in a daemon thread: (server, ``.../v1`` URL).

    For the OpenAI-compatible fakes the tests start; stop with ``server.shutdown()``.
    """
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/v1"


class ChromaServer:
    """A real ``chroma run`` server over a folder under tmp, on a free localhost port.

    ``stop()`` and ``start()`` again keep the folder and the port (a restart).
    """

    def __init__(self, path: Path, log: Path) -> None:
        # the CLI ships with the chromadb wheel, beside this interpreter
        self.executable = Path(sys.executable).with_name("chroma")
        if not self.executable.is_file():
            raise RuntimeError(
                f"no chroma CLI at {self.executable}; install chromadb (requirements-lock.txt)"
            )
        self.path, self.log = path, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> None:
        self.process = subprocess.Popen(
            [
                str(self.executable),
                "run",
                "--path",
                str(self.path),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_until_http_ok(f"{self.url}/api/v2/heartbeat", self.process, self.log, timeout)

    def stop(self) -> None:
        if self.process is None:
            return
        stop_process(self.process)
        self.process = None


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """A ``chroma run`` server for one test module, stopped after it."""
    root = tmp_path_factory.mktemp("chroma-server")
    server = ChromaServer(root / "data", root / "chroma.log")
    server.start()
    yield server
    server.stop()
