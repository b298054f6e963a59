"""The fenced shell blocks of the documentation, and a fresh project copy to run them in.

A block is run by ``test_documented_commands.py`` exactly as written, unless the line just
before it is ``<!-- not-run: <why> -->``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import PROJECT

DOCUMENTS = ("README.md", "docs/*.md", "deploy/README.md", "bench/README.md")
SHELLS = ("bash", "sh", "console", "shell")
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<reason>.*?)\s*-->")
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)\s*(?P<lang>[\w-]*)")
# what a copy of the project leaves out: environments, stores, caches
IGNORED = (".git", ".venv", "mlruns", "mlflow.db", ".rag-model", "__pycache__", ".pytest_cache",
           ".ruff_cache", "build", "*.egg-info")  # fmt: skip


@dataclass(frozen=True)
class Block:
    """One fenced shell block: where it is, its text, and why it is not run (if it is not)."""

    document: str
    line: int
    text: str
    not_run: str | None

    @property
    def name(self) -> str:
        """``README.md:42``."""
        return f"{self.document}:{self.line}"

    def script(self) -> str:
        """The commands: a console block's ``$ `` lines, any other block as it is."""
        if "\n$ " not in f"\n{self.text}":
            return self.text
        return "\n".join(line[2:] for line in self.text.splitlines() if line.startswith("$ "))


def documents(root: Path = PROJECT) -> list[Path]:
    """Every document whose shell blocks are checked."""
    found: list[Path] = []
    for pattern in DOCUMENTS:
        found += sorted(root.glob(pattern))
    return found


def shell_blocks(path: Path, root: Path = PROJECT) -> list[Block]:
    """The shell blocks of one Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, number = [], 0
    while number < len(lines):
        opening = FENCE.match(lines[number])
        if not opening:
            number += 1
            continue
        end = next(
            (
                i
                for i in range(number + 1, len(lines))
                if lines[i].strip().startswith(opening["fence"])
                and not lines[i].strip().strip(opening["fence"][0])
            ),
            len(lines),
        )
        if opening["lang"] in SHELLS:
            before = next((lines[i] for i in range(number - 1, -1, -1) if lines[i].strip()), "")
            marker = NOT_RUN.fullmatch(before.strip())
            indent = len(opening["indent"])
            body = "\n".join(line[indent:] for line in lines[number + 1 : end])
            blocks.append(
                Block(
                    path.relative_to(root).as_posix(),
                    number + 1,
                    body + "\n",
                    marker["reason"] if marker else None,
                )
            )
        number = end + 1
    return blocks


def all_blocks(root: Path = PROJECT) -> list[Block]:
    """The shell blocks of every document."""
    return [block for path in documents(root) for block in shell_blocks(path, root)]


def copy_project(target: Path) -> Path:
    """A copy of the working tree (sample data included) without environments or stores."""
    shutil.copytree(PROJECT, target, ignore=shutil.ignore_patterns(*IGNORED), symlinks=True)
    return target


def environment(project: Path) -> dict[str, str]:
    """What a user with the venv active has: its tools on PATH, a store in the project folder.

    PYTHONPATH makes the copy's code the one imported, also by the console scripts of an
    editable install that points at another checkout.
    """
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLFLOW_", "RAG_", "PYTEST_")) and key != "PYTHONPATH"
    }
    return {
        **inherited,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "VIRTUAL_ENV": str(Path(sys.executable).parent.parent),
        "PYTHONPATH": str(project),
        "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "HF_HUB_OFFLINE": "1",
        "RAGAS_DO_NOT_TRACK": "true",
        "TQDM_DISABLE": "1",
    }


def private_network() -> list[str] | None:
    """A command prefix giving a process its own network namespace (loopback up), or None.

    The documents use fixed ports (gunicorn's 8000); in a namespace of their own they cannot
    collide with anything else running on the machine.
    """
    prefix = ["unshare", "--net"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    try:
        probe = subprocess.run(
            [*prefix, "ip", "link", "set", "lo", "up"], capture_output=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return prefix if probe.returncode == 0 else None
