"""Replicas behind nginx: all follow @production, a lost one is routed around, limits shared.

Rate limits are shared through Redis, or counted per replica without it.

nginx runs ``deploy/nginx/rag-model.conf`` itself, with only its upstream servers and listen
address replaced by the test's ports.
"""

from __future__ import annotations

import getpass
import os
import re
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow import MlflowClient

from tests.conftest import (
    PROJECT,
    RedisServer,
    Server,
    free_port,
    require_tool,
    stop_process,
    use_tracking_store,
    wait_until_http_ok,
)
from tests.serving.live import Load, log_version, wait_for

pytestmark = pytest.mark.slow

EXAMPLE = PROJECT / "deploy" / "nginx" / "rag-model.conf"
UPSTREAM_SERVER = re.compile(r"^( +)server \S+:\d+( [^;\n]*)?;\n", re.M)
QUESTION = {"question": "What is oxygen?"}


def render_example(ports: list[int], listen: int) -> str:
    """The example config with the test's replicas as upstream servers and a local listen port."""
    text = EXAMPLE.read_text()
    servers = list(UPSTREAM_SERVER.finditer(text))
    assert servers, f"no 'server host:port ...;' lines in {EXAMPLE}"
    indent, params = servers[0].group(1), servers[0].group(2) or ""
    ours = "".join(f"{indent}server 127.0.0.1:{port}{params};\n" for port in ports)
    start, end = servers[0].start(), servers[-1].end()
    text = text[:start] + ours + UPSTREAM_SERVER.sub("", text[end:])
    text, listens = re.subn(
        r"^(\s*)listen \S+;", rf"\1listen 127.0.0.1:{listen};", text, flags=re.M
    )
    assert listens == 1, f"expected one listen directive in {EXAMPLE}"
    return text


class Nginx:
    """A real nginx in front of ``ports``, in its own folder; one worker: exact round robin."""

    def __init__(self, ports: list[int], folder: Path) -> None:
        binary = require_tool("nginx", "nginx")
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.access_log = folder / "access.log"
        self.log = folder / "error.log"
        (folder / "rag-model.conf").write_text(render_example(ports, self.port))
        temp_paths = "".join(
            f"    {kind}_temp_path {folder / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (folder / "nginx.conf").write_text(
            # as root, workers run as root too: the test's folders are private to it
            (f"user {getpass.getuser()};\n" if os.geteuid() == 0 else "")
            + f"worker_processes 1;\npid {folder / 'nginx.pid'};\nerror_log {self.log} warn;\n"
            + "events { worker_connections 256; }\nhttp {\n"
            + "    log_format upstreams '$status|$upstream_addr|$upstream_status';\n"
            + f"    access_log {self.access_log} upstreams;\n"
            + temp_paths
            + f"    include {folder / 'rag-model.conf'};\n}}\n"
        )
        self.process = subprocess.Popen(
            [binary, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_until_http_ok(f"{self.url}/health", self.process, self.log, timeout=30)

    def upstream_attempts(self) -> list[list[tuple[str, str]]]:
        """Per logged request, the (replica, status) of each attempt: more than one is a retry."""
        rows = []
        for line in self.access_log.read_text().splitlines():
            _, addresses, statuses = line.split("|")
            rows.append(list(zip(addresses.split(", "), statuses.split(", "), strict=True)))
        return rows

    def stop(self) -> None:
        stop_process(self.process)


def replica_env(tracking_uri: str, **settings: str) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "RAG_MODEL_URI": "models:/swap@production",
        "RAG_POLL_SECONDS": "1",
        "RAG_PROXY_HOPS": "1",
        **settings,
    }


def start_replicas(envs: list[dict[str, str]], folder: Path) -> list[Server]:
    """One-worker replicas, one per environment, started together; returned once all are ready."""
    folder.mkdir(parents=True, exist_ok=True)
    replicas = []
    try:
        for i, env in enumerate(envs):
            replicas.append(Server({**env, "RAG_TEST_LOG": str(folder / f"r{i}.log")}, workers=1))
        for replica in replicas:
            replica.wait_ready()
    except BaseException:
        stop_all(replicas)
        raise
    return replicas


def stop_all(processes: list) -> None:  # noqa: ANN001 - Servers and Nginx
    for process in processes:
        process.stop()


def served_by(replica: Server) -> str:
    return requests.get(f"{replica.url}/health", timeout=10).headers["X-Served-By"]


def kill_replica(replica: Server) -> None:
    """SIGKILL the replica's gunicorn master and its workers, as a crashed machine would."""
    pid = replica.process.pid
    workers = [
        int(stat.parent.name) for stat in Path("/proc").glob("[0-9]*/stat") if _parent(stat) == pid
    ]
    for worker in [pid, *workers]:
        os.kill(worker, signal.SIGKILL)
    replica.process.wait(10)


def _parent(stat: Path) -> int | None:
    try:  # "pid (name) state ppid ...": the name may contain spaces, so split after ")"
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):  # the process ended meanwhile
        return None


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """A SQLite store with two fake-embedder versions of ``swap``; v1 is @production."""
    root = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", "")
        uri = use_tracking_store(root / "mlflow")
        v1, _ = log_version(root, 800)
        v2, _ = log_version(root, 600)
        MlflowClient().set_registered_model_alias("swap", "production", v1)
        yield uri, v1, v2
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]


def test_replicas_follow_production_and_nginx_routes_around_a_lost_one(
    store: tuple[str, str, str], tmp_path: Path
) -> None:
    uri, v1, v2 = store
    MlflowClient(uri).set_registered_model_alias("swap", "production", v1)
    replicas = start_replicas([replica_env(uri)] * 3, tmp_path)
    nginx = Nginx([r.port for r in replicas], tmp_path / "nginx")
    load = None
    try:
        names = [served_by(r) for r in replicas]
        assert len(set(names)) == 3
        # round robin over the three, all on v1
        responses = [
            requests.post(f"{nginx.url}/v1/query", json=QUESTION, timeout=30) for _ in range(9)
        ]
        assert [r.status_code for r in responses] == [200] * 9
        assert Counter(r.headers["X-Served-By"] for r in responses) == {name: 3 for name in names}
        assert {r.json()["model"]["version"] for r in responses} == {v1}

        # the proxy headers: the client's request id is kept, else nginx makes one
        kept = requests.get(f"{nginx.url}/health", headers={"X-Request-ID": "req-7"}, timeout=10)
        assert kept.headers["X-Request-ID"] == "req-7"
        made = requests.get(f"{nginx.url}/health", timeout=10).headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", made)
        # bodies past the replicas' limit are refused by nginx, in the replicas' error shape
        too_large = requests.post(
            f"{nginx.url}/v1/query", data=b"x" * (1_048_576 + 1), timeout=10,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        direct = requests.post(
            f"{replicas[0].url}/v1/query", data=b"x" * (1_048_576 + 1), timeout=10,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert too_large.status_code == direct.status_code == 413
        assert too_large.json() == direct.json()

        # promotion: every replica's watcher swaps, directly and through nginx
        load = Load(nginx.url)
        wait_for(lambda: load.last(6) == [v1] * 6)
        MlflowClient(uri).set_registered_model_alias("swap", "production", v2)
        for replica in replicas:
            wait_for(
                lambda r=replica: (
                    requests.get(f"{r.url}/version", timeout=10).json()["version"] == v2
                )
            )
        wait_for(lambda: load.last(30) == [v2] * 30)
        load.stop()
        assert [o for o in load.outcomes if o[0] != 200] == []  # none failed during the swap
        print(f"\nreplicas: {len(load.outcomes)} requests through nginx across the promotion")

        # one replica lost: nginx skips it after the first refused connection
        kill_replica(replicas[0])
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{replicas[0].url}/health", timeout=5)
        before = len(nginx.upstream_attempts())
        after = [
            requests.post(f"{nginx.url}/v1/query", json=QUESTION, timeout=30) for _ in range(12)
        ]
        assert [r.status_code for r in after] == [200] * 12
        assert {r.headers["X-Served-By"] for r in after} == set(names[1:])
        assert {r.headers["X-Model-Version"] for r in after} == {v2}
        attempts = nginx.upstream_attempts()[before:]
        dead = f"127.0.0.1:{replicas[0].port}"
        failed = [a for a in sum(attempts, []) if a[0] == dead]
        print(f"after the kill: 12 requests, {len(failed)} attempt(s) on the dead replica, retried")
        # max_fails=1: after a refused connection the replica is skipped for fail_timeout,
        # so it gets fewer attempts than the 4 of 12 round robin would give it
        assert 1 <= len(failed) < 4
        assert all(status == "502" for _, status in failed)
    finally:
        if load is not None:
            load.stop()
        stop_all([nginx, *replicas])


def test_rate_limits_are_shared_through_redis_and_counted_per_replica_without(
    store: tuple[str, str, str], tmp_path: Path
) -> None:
    """Two pairs of replicas, limit 5/hour; 8 requests through nginx give each replica 4."""
    uri, _, _ = store
    redis = RedisServer()
    limit = {"RAG_RATE_LIMIT": "5/hour"}
    shared = replica_env(uri, **limit, RAG_RATE_LIMIT_STORAGE=redis.url)
    alone = replica_env(uri, **limit)  # memory://, the default
    replicas: list[Server] = []
    proxies: list[Nginx] = []
    try:
        replicas = start_replicas([shared, shared, alone, alone], tmp_path)
        proxies = [
            Nginx([r.port for r in replicas[:2]], tmp_path / "nginx-redis"),
            Nginx([r.port for r in replicas[2:]], tmp_path / "nginx-memory"),
        ]
        outcome = {}
        for name, proxy, pair in (
            ("redis", proxies[0], replicas[:2]),
            ("memory", proxies[1], replicas[2:]),
        ):
            url = f"{proxy.url}/v1/query"
            responses = [requests.post(url, json=QUESTION, timeout=30) for _ in range(8)]
            outcome[name] = {
                "statuses": dict(Counter(r.status_code for r in responses)),
                "per replica": sorted(
                    Counter(r.headers["X-Served-By"] for r in responses).values()
                ),
                # what each replica itself counted, 200s and 429s (its /metrics)
                "counted": [query_requests(replica) for replica in pair],
            }
        print(f"\n8 requests through nginx to 2 replicas, limit 5/hour: {outcome}")
        # Redis: one count for both replicas, though neither alone reached the limit
        assert outcome["redis"]["statuses"] == {200: 5, 429: 3}
        assert outcome["redis"]["per replica"] == [4, 4]
        assert sum(outcome["redis"]["counted"], Counter()) == {200: 5, 429: 3}
        assert [c.total() for c in outcome["redis"]["counted"]] == [4, 4]
        # memory: each replica counts alone, and 4 of 5 is under the limit in each
        assert outcome["memory"]["statuses"] == {200: 8}
        assert outcome["memory"]["counted"] == [{200: 4}, {200: 4}]
    finally:
        stop_all([*proxies, *replicas])
        redis.stop()


def query_requests(replica: Server) -> Counter:
    """Status -> count of POST /v1/query requests, from the replica's /metrics."""
    text = requests.get(f"{replica.url}/metrics", timeout=10).text
    pattern = r'^rag_requests_total\{method="POST",route="/v1/query",status="(\d+)"\} (\S+)$'
    return Counter({int(s): int(float(n)) for s, n in re.findall(pattern, text, re.M)})
