"""Real services the tracking-server tests start: PostgreSQL, an S3 store (moto), `mlflow server`.

Each is a context manager that starts the service on a free localhost port in a temporary
folder and stops it on exit. Nothing relies on a system service; a missing tool fails the test
with what to install. ``python -m tests.tracking_services`` (scripts/team_tracking_server.sh)
starts the team stack for local use until Ctrl-C.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, stop_process, wait_until_http_ok

S3_REGION = "us-east-1"


class MlflowServer:
    """A real ``mlflow server`` proxying artifacts (``--serve-artifacts``) on a free port.

    ``kill()`` takes it away at once (its whole process group: ``mlflow server`` runs uvicorn
    as a child); ``start()`` again brings it back on the same port with the same stores.

    Args:
        root: folder for its log (``mlflow-server.log``); also its working directory.
        backend_store_uri: runs and registry (``sqlite:///...``, ``postgresql://...``).
        artifacts_destination: where the server writes artifacts (a folder, ``s3://...``).
        env: extra environment for the server process only (its store credentials).
    """

    def __init__(
        self,
        root: Path,
        backend_store_uri: str,
        artifacts_destination: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.backend_store_uri = backend_store_uri
        self.artifacts_destination = artifacts_destination
        self.env = env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "mlflow-server.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> None:
        with self.log.open("ab") as out:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mlflow",
                    "server",
                    "--backend-store-uri",
                    self.backend_store_uri,
                    "--artifacts-destination",
                    self.artifacts_destination,
                    "--serve-artifacts",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    "1",
                ],
                cwd=self.root,
                # the job runner (huey consumers, for MLflow's GenAI jobs) is unused here and
                # its processes outlive a stopped server
                env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # kill() reaches uvicorn too
            )
        wait_until_http_ok(f"{self.url}/health", self.process, self.log, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the server and its children: connections are refused from now on."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process(self.process)


@contextmanager
def mlflow_server(
    root: Path,
    backend_store_uri: str,
    artifacts_destination: str,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """A running :class:`MlflowServer` for the ``with`` block; yields its URL."""
    server = MlflowServer(root, backend_store_uri, artifacts_destination, env)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@dataclass(frozen=True)
class Postgres:
    """A running PostgreSQL server with one database owned by a password-protected role."""

    port: int
    database: str
    user: str
    password: str
    host: str = "127.0.0.1"

    @property
    def uri(self) -> str:
        """The backend-store URI, without the password: libpq reads it from ``PGPASSWORD``."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Rows of one SQL statement, run as the database's role."""
        import psycopg

        with psycopg.connect(
            host=self.host,
            port=self.port,
            dbname=self.database,
            user=self.user,
            password=self.password,
        ) as connection:
            return list(connection.execute(sql, params).fetchall())


def _postgres_bin() -> Path:
    """The folder of initdb/pg_ctl/psql: Debian's versioned folder, else ``PATH``."""
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3])
    )
    if debian:
        return debian[-1].parent
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb") and shutil.which("psql"):
        return Path(found).parent
    pytest.fail(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install the Debian package "
        "'postgresql' (apt-get install postgresql; .ci/run does)",
        pytrace=False,
    )


def _run_as_postgres_user(root: Path) -> list[str]:
    """The command prefix for PostgreSQL's tools: as root, run them as the 'postgres' user.

    initdb and postgres refuse to run as root.
    """
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        pytest.fail("running as root needs 'runuser' (util-linux) to start PostgreSQL")
    try:
        shutil.chown(root, "postgres", "postgres")
    except LookupError:
        pytest.fail(
            "running as root: PostgreSQL must run as a user 'postgres', which the Debian "
            "package 'postgresql' creates (or: useradd --system postgres)",
            pytrace=False,
        )
    return ["runuser", "-u", "postgres", "--"]


@contextmanager
def postgres_server(database: str = "mlflow", user: str = "mlflow") -> Iterator[Postgres]:
    """A new PostgreSQL cluster in a temporary folder on a free port; stopped and removed after.

    The role ``user`` logs in over TCP with a random password (scram-sha-256); the unix socket
    lives in the same folder, so no system directory is touched.
    """
    bin_dir = _postgres_bin()
    # not under pytest's tmp_path: as root that is a 0700 folder the postgres user cannot enter
    root = Path(tempfile.mkdtemp(prefix="rag-model-pg-"))
    as_postgres = _run_as_postgres_user(root)
    data, log = root / "data", root / "postgres.log"
    port = free_port()
    password = secrets.token_urlsafe(18)

    def run(tool: str, *args: str) -> None:
        done = subprocess.run(
            [*as_postgres, str(bin_dir / tool), *args], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.fail(f"{tool} failed ({done.returncode}): {done.stdout}{done.stderr}")

    started = False
    try:
        run(
            "initdb",
            *("-D", str(data), "-U", "postgres", "-E", "UTF8", "--no-sync", "--no-instructions"),
            *("--auth-local=trust", "--auth-host=scram-sha-256"),
        )
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        run("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        started = True
        sql = (
            f"CREATE ROLE {user} LOGIN PASSWORD '{password}';"
            f"CREATE DATABASE {database} OWNER {user};"
        )
        for statement in sql.split(";")[:-1]:  # CREATE DATABASE cannot run in a transaction
            run("psql", "-h", str(root), "-p", str(port), "-U", "postgres", "-qc", statement)
        yield Postgres(port, database, user, password)
    finally:
        if started:
            run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class S3Store:
    """A bucket on a running S3-compatible server, with the only credentials it accepts."""

    endpoint: str
    bucket: str
    access_key_id: str
    secret_access_key: str

    def client(self) -> Any:
        """A boto3 S3 client with this store's credentials (passed here, never via env)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=S3_REGION,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def server_env(self) -> dict[str, str]:
        """What a process that writes to this store needs in its environment."""
        return {
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": S3_REGION,
        }

    def objects(self) -> dict[str, bytes]:
        """Every object in the bucket: key -> content."""
        s3 = self.client()
        keys = [
            item["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
            for item in page.get("Contents", [])
        ]
        return {key: s3.get_object(Bucket=self.bucket, Key=key)["Body"].read() for key in keys}


# moto's IAM checks every request after this many: the set-up's own three calls
_SETUP_CALLS = 3


@contextmanager
def moto_s3(root: Path, bucket: str = "rag-models") -> Iterator[S3Store]:
    """A bucket on moto's standalone S3 server with IAM checks on: only its key gets in."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = root / "moto.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            cwd=root,
            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(_SETUP_CALLS)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_http_ok(f"{endpoint}/moto-api/", process, log, timeout=60)
        yield _s3_user_and_bucket(endpoint, bucket)
    finally:
        stop_process(process)


def _s3_user_and_bucket(endpoint: str, bucket: str) -> S3Store:
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name=S3_REGION,
        aws_access_key_id="setup",  # unchecked: the first calls are let through
        aws_secret_access_key="setup",
    )
    iam.create_user(UserName="mlflow-server")
    allow_s3 = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
    policy = {"Version": "2012-10-17", "Statement": [allow_s3]}
    iam.put_user_policy(
        UserName="mlflow-server", PolicyName="s3", PolicyDocument=json.dumps(policy)
    )
    key = iam.create_access_key(UserName="mlflow-server")["AccessKey"]
    store = S3Store(endpoint, bucket, key["AccessKeyId"], key["SecretAccessKey"])
    store.client().create_bucket(Bucket=bucket)
    return store


@dataclass(frozen=True)
class TeamStack:
    """A tracking server on PostgreSQL whose artifacts go to ``s3://<bucket>/<prefix>``."""

    url: str
    postgres: Postgres
    s3: S3Store
    prefix: str


@contextmanager
def team_tracking_stack(root: Path, prefix: str = "mlflow-artifacts") -> Iterator[TeamStack]:
    """PostgreSQL + moto S3 + ``mlflow server --serve-artifacts``, as docs/tracking-server.md.

    Only the tracking server's environment gets the database password (``PGPASSWORD``) and the
    bucket's keys; clients need only its URL.
    """
    with postgres_server() as postgres, moto_s3(root) as s3:
        server_env = {**s3.server_env(), "PGPASSWORD": postgres.password}
        destination = f"s3://{s3.bucket}/{prefix}"
        with mlflow_server(root, postgres.uri, destination, server_env) as url:
            yield TeamStack(url, postgres, s3, prefix)


def main() -> None:
    """Start the team stack in a temporary folder; print what clients need; stop on Ctrl-C."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop cleanly on kill too
    root = Path(tempfile.mkdtemp(prefix="rag-model-team-"))
    started = time.monotonic()
    try:
        with team_tracking_stack(root) as stack:
            print(
                f"tracking server {stack.url} up in {time.monotonic() - started:.0f} s\n"
                f"  runs, registry: {stack.postgres.uri} (password in its PGPASSWORD only)\n"
                f"  artifacts:      s3://{stack.s3.bucket}/{stack.prefix} on {stack.s3.endpoint}"
                f" (keys in its environment only)\n"
                f"  logs:           {root}\n"
                "clients:\n"
                f"  export MLFLOW_TRACKING_URI={stack.url}"
                " MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD=false\n"
                "Ctrl-C stops everything and deletes the data.",
                flush=True,
            )
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
