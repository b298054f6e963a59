"""Where tests put their SQLite tracking stores: in RAM (/dev/shm) when the machine has it.

MLflow commits every trace, tag and assessment of an evaluation on its own, and each commit waits
for the disk: on the 2-core CI machine `rag-model main --fake` on the sample set took 153 s with
the store on disk and 95 s with it in /dev/shm (same code, one run each, load average 5-7).
Tests need no durability. Artifacts stay where the test puts them.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

_RAM = Path("/dev/shm")
_session_dir: Path | None = None


def database_dir(fallback: Path) -> Path:
    """A new empty directory in RAM for one store, or ``fallback`` where there is no RAM disk."""
    global _session_dir
    if not (_RAM.is_dir() and os.access(_RAM, os.W_OK)):
        return fallback
    if _session_dir is None:
        _session_dir = Path(tempfile.mkdtemp(prefix="rag-model-tests-", dir=_RAM))
        atexit.register(shutil.rmtree, _session_dir, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=_session_dir))
