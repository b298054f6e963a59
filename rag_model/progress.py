"""Progress of long build and load steps: a bar on a terminal, one line per step in a log.

Every step that can take more than a few seconds (reading, chunking, embedding, Chroma writes,
BM25, sentence vectors, copying and verifying artifacts, loading at serve time) reports through
here. ``progress=False`` (``--quiet``) prints nothing. On a terminal a step with many items shows
a tqdm bar; where stderr is not a terminal (CI, ``mlflow run`` logs, gunicorn) a bar's carriage
returns would flood the log, so each step prints one line with its counts when it ends (and,
if it runs for minutes, one a minute with the count so far).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Sized
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
PREFIX = "[rag-model]"
HEARTBEAT_SECONDS = 60.0  # in a log, a long step also prints its count this often


def interactive() -> bool:
    """Whether stderr is a terminal (a bar) or a log (one line per step)."""
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def log_line(progress: bool, message: str) -> None:
    """One line on stderr when ``progress`` is on."""
    if progress:
        print(f"{PREFIX} {message}", file=sys.stderr, flush=True)


def steps(items: Iterable[T], desc: str, progress: bool, unit: str = "it") -> Iterator[T]:
    """Iterate ``items`` with a bar (terminal) or one closing line with the count (log)."""
    if not progress:
        yield from items
        return
    if interactive():
        from tqdm.auto import tqdm

        yield from tqdm(items, desc=desc, unit=unit)
        return
    started = last = time.perf_counter()
    total = len(items) if isinstance(items, Sized) else None
    count = 0
    for item in items:
        yield item
        count += 1
        if time.perf_counter() - last >= HEARTBEAT_SECONDS:  # a long step is not silent
            last = time.perf_counter()
            of = f"/{total}" if total is not None else ""
            log_line(True, f"{desc}: {count}{of} {unit}s after {last - started:.0f} s")
    plural = unit + ("es" if unit.endswith(("ch", "s")) else "s")
    log_line(True, f"{desc}: {count} {plural} in {time.perf_counter() - started:.1f} s")


@contextmanager
def timed_step(desc: str, progress: bool, detail: str = "") -> Iterator[None]:
    """A step without a natural count: one line when it ends, with ``detail`` and seconds."""
    started = time.perf_counter()
    yield
    suffix = f" ({detail})" if detail else ""
    log_line(progress, f"{desc}{suffix} in {time.perf_counter() - started:.1f} s")
