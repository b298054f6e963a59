"""A small closed-loop HTTP load generator and process probes for the serving benchmarks.

Each of ``clients`` threads sends one request, waits for the answer, and sends the next, for a
fixed time: the load is bounded by the number of clients, as with real users. Connections are
opened per request (gunicorn's sync workers close them anyway), with ``http.client`` so the
client costs little CPU on the same machine.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Body = Callable[[str], dict[str, Any]]


@dataclass
class LoadResult:
    """Latencies (ms) of the successful requests, errors, and the wall time of one level."""

    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)  # from Server-Timing, when sent
    errors: int = 0
    first_error: str = ""
    error_kinds: dict[str, int] = field(default_factory=dict)  # "HTTP 503", "ConnectionResetError"

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, share: float, values: list[float] | None = None) -> float:
        data = sorted(self.latencies if values is None else values)
        if not data:
            return float("nan")
        return data[min(len(data) - 1, int(share * len(data)))]


def post(port: int, path: str, body: dict[str, Any], timeout: float = 60) -> tuple[int, Any, str]:
    """POST ``body`` as JSON; return (status, parsed body, Server-Timing header)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = json.dumps(body)
        connection.request("POST", path, payload, {"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        return response.status, json.loads(data or b"null"), response.getheader("Server-Timing")
    finally:
        connection.close()


def get_status(port: int, path: str) -> int:
    """The status of GET ``path``, or 0 when nothing answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        connection.close()


def server_ms(header: str | None) -> float | None:
    """The ``dur`` of a ``Server-Timing: app;dur=1.234`` header."""
    if not header or "dur=" not in header:
        return None
    return float(header.split("dur=", 1)[1].split(";")[0].split(",")[0])


def run_load(
    port: int, path: str, body: Body, questions: Iterator[str], clients: int, seconds: float
) -> LoadResult:
    """Drive the server with ``clients`` closed-loop clients for ``seconds``."""
    result = LoadResult(clients=clients, seconds=seconds)
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client() -> None:
        while time.perf_counter() < deadline:
            with lock:
                question = next(questions)
            started = time.perf_counter()
            kind = ""
            try:
                status, data, timing = post(port, path, body(question))
            # a refused or dropped connection, a garbled status line, a body that is not JSON:
            # counted by kind, and the client goes on (a dead client thread would lower the load)
            except (OSError, ValueError, http.client.HTTPException) as exc:
                status, data, timing, kind = 0, str(exc), None, type(exc).__name__
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                if status == 200:
                    result.latencies.append(elapsed)
                    measured = server_ms(timing)
                    if measured is not None:
                        result.server_ms.append(measured)
                else:
                    result.errors += 1
                    result.first_error = result.first_error or f"{status}: {str(data)[:200]}"
                    kind = kind or f"HTTP {status}"
                    result.error_kinds[kind] = result.error_kinds.get(kind, 0) + 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    return result


def wait_ready(port: int, path: str, process: subprocess.Popen, timeout: float = 300) -> float:
    """Seconds from now until GET ``path`` answers 200 (the process must stay alive)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:4]} exited with {process.returncode}")
        if get_status(port, path) == 200:
            return time.perf_counter() - started
        time.sleep(0.05)
    raise TimeoutError(f"port {port}{path} not ready in {timeout} s")


def wait_first_answer(
    port: int,
    path: str,
    body: dict[str, Any],
    process: subprocess.Popen,
    started: float,
    timeout: float = 300,
) -> float:
    """Seconds from ``started`` to the first 200 answer to POST ``body``.

    ``started`` is a ``perf_counter`` taken just before the process was started; the process
    must stay alive meanwhile.
    """
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:4]} exited with {process.returncode}")
        try:
            status = post(port, path, body, timeout=max(1.0, timeout))[0]
        except (OSError, ValueError, http.client.HTTPException):
            status = 0
        if status == 200:
            return time.perf_counter() - started
        time.sleep(0.05)
    raise TimeoutError(f"port {port}{path} gave no answer in {timeout} s")


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def rss_mib(pid: int) -> float:
    """Resident memory of one process in MiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def worker_rss(root: int, workers: int) -> tuple[float, float]:
    """(mean RSS of the ``workers`` largest processes in the tree, RSS of the whole tree)."""
    sizes = sorted((rss_mib(pid) for pid in process_tree(root)), reverse=True)
    largest = sizes[:workers]
    return (sum(largest) / len(largest) if largest else 0.0), sum(sizes)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group, then SIGKILL what is left after 20 s."""
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
