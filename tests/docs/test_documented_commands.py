"""Every shell block of the docs runs as written, or says why not; every entry point runs.

The fast check (marker ``docs``) fails when a block is neither run here nor marked
``<!-- not-run: <why> -->``. The slow ones (``docs`` and ``slow``) run each document's blocks
in order, as one shell session (so a server a block starts serves the blocks after it), in a
fresh copy of the project with its own SQLite store and network namespace; and every MLproject
entry point under ``mlflow run``, once with its defaults and once with one parameter.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT
from tests.docs.blocks import Block, all_blocks, copy_project, environment, private_network
from tests.ram import database_dir

pytestmark = pytest.mark.docs

BLOCKS = all_blocks()
RUN = [block for block in BLOCKS if block.not_run is None]
RUN_DOCUMENTS = sorted({block.document for block in RUN})


def test_every_shell_block_is_run_here_or_says_why_not() -> None:
    assert len(BLOCKS) >= 10, "the block parser found too few blocks"
    for block in BLOCKS:
        if block.not_run is not None:
            assert len(block.not_run) >= 10, f"{block.name}: say why it is not run"
    # the runnable blocks are exactly the ones the slow test runs, document by document
    assert {block.document for block in RUN} == set(RUN_DOCUMENTS)
    assert RUN, "no block would run"


def test_the_parser_reads_fences_markers_and_console_prompts(tmp_path: Path) -> None:
    from tests.docs.blocks import shell_blocks

    doc = tmp_path / "doc.md"
    doc.write_text(
        "text\n\n```bash\necho one\n```\n\n<!-- not-run: needs a cluster -->\n```sh\nkubectl\n"
        "```\n\n```python\nprint()\n```\n\n```console\n$ echo two\ntwo\n```\n",
        encoding="utf-8",
    )
    blocks = shell_blocks(doc, tmp_path)
    assert [(b.line, b.not_run, b.script()) for b in blocks] == [
        (3, None, "echo one\n"),
        (8, "needs a cluster", "kubectl\n"),
        (16, None, "echo two"),
    ]


@dataclass
class Workspace:
    """A fresh project copy, its environment and the namespace prefix commands run under."""

    root: Path
    env: dict[str, str]
    prefix: list[str]

    def run(self, script: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        """Run ``script`` with bash in the copy: stop at the first failure, then stop all jobs."""
        wrapped = (
            "set -euo pipefail\nip link set lo up 2> /dev/null || true\n"
            "trap 'kill $(jobs -p) 2> /dev/null || true; wait' EXIT\n" + script
        )
        process = subprocess.Popen(
            [*self.prefix, "bash", "-c", wrapped],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            output += f"\n(killed after {timeout} s)"
        return subprocess.CompletedProcess(process.args, process.returncode, output, "")


def workspace(tmp_path: Path) -> Workspace:
    prefix = private_network()
    if prefix is None:
        pytest.skip("needs `unshare --net` (the documents use fixed ports such as 8000)")
    root = copy_project(tmp_path / "project")
    # the documents' store (MLFLOW_TRACKING_URI=sqlite:///<project>/mlflow.db) lives in RAM:
    # see tests/ram.py for why
    (root / "mlflow.db").symlink_to(database_dir(tmp_path) / "mlflow.db")
    return Workspace(root, environment(root), prefix)


def script_of(blocks: list[Block]) -> str:
    """The blocks one after another, each announced, so a failure names its block."""
    return "".join(f"echo '>>> {block.name}'\n{block.script()}\n" for block in blocks)


@pytest.mark.slow
@pytest.mark.parametrize("document", RUN_DOCUMENTS)
def test_a_documents_blocks_run_as_written(document: str, tmp_path: Path) -> None:
    space = workspace(tmp_path)
    blocks = [block for block in RUN if block.document == document]
    result = space.run(script_of(blocks))
    ran = [line for line in result.stdout.splitlines() if line.startswith(">>> ")]
    assert result.returncode == 0, (
        f"{ran[-1] if ran else document} failed (exit {result.returncode}):\n"
        f"{result.stdout[-6000:]}"
    )


def entry_points() -> list[str]:
    spec = yaml.safe_load((PROJECT / "MLproject").read_text(encoding="utf-8"))
    return list(spec["entry_points"])


# (entry point, one -P parameter or None for its defaults), in an order where each run finds
# what it needs; ("$", command) is a setup command. Runs the documents' blocks already make
# (an entry point with parameters, report with its defaults) are not repeated here.
ENTRY_POINT_RUNS: list[tuple[str, str | None]] = [
    ("build_index", None),  # version 1
    ("build_index", "chunk_size=500"),  # version 2
    ("main", None),  # version 3, @candidate, evaluated on the whole sample eval set
    ("evaluate", None),  # @candidate again
    ("sweep", None),  # the base config alone, relative default paths (issue 19)
    ("promote", None),  # version 3 -> @production: the first one
    ("diff", None),  # @production against @candidate: both version 3, nothing changed
    ("diff", "before=1"),  # version 1 (chunk_size default) against @candidate
    ("$", "rag-model promote --version 1 --force --reason 'setup for rollback'"),
    ("rollback", None),  # back to 3
    ("$", "rag-model promote --version 1 --force --reason 'setup for rollback'"),
    ("rollback", "reason=checked by the doc tests"),
    ("history", None),
    ("history", "alias=candidate"),
    ("report", "out=site"),
]
MLFLOW_RUN = re.compile(r"mlflow run \. -e (\w+)(?P<rest>[^\n#]*)")


def documented_entry_point_runs() -> set[tuple[str, bool]]:
    """(entry point, with no -P) of each `mlflow run . -e` in the blocks that run."""
    return {
        (match[1], "-P " not in match["rest"])
        for block in RUN
        for match in MLFLOW_RUN.finditer(block.script())
    }


@pytest.fixture(scope="module")
def entry_point_space(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    yield workspace(tmp_path_factory.mktemp("entry-points"))


def test_every_entry_point_is_run_with_its_defaults_and_with_a_parameter() -> None:
    covered = {(entry, param is None) for entry, param in ENTRY_POINT_RUNS if entry != "$"}
    covered |= documented_entry_point_runs()
    missing = {(e, d) for e in entry_points() for d in (True, False)} - covered
    assert not missing, f"add to ENTRY_POINT_RUNS (True: with its defaults): {sorted(missing)}"


@pytest.mark.slow
def test_every_entry_point_runs_under_mlflow_run(entry_point_space: Workspace) -> None:
    lines = []
    for entry, param in ENTRY_POINT_RUNS:
        if entry == "$":
            lines.append(f"echo '>>> {param}'\n{param}")
            continue
        parameter = f" -P '{param}'" if param else ""
        command = f"mlflow run . -e {entry} --env-manager local{parameter}"
        lines.append(f"echo '>>> {command}'\n{command}")
    result = entry_point_space.run("\n".join(lines) + "\n")
    ran = [line for line in result.stdout.splitlines() if line.startswith(">>> ")]
    assert result.returncode == 0, f"{ran[-1]} failed:\n{result.stdout[-6000:]}"
    assert (entry_point_space.root / "site" / "index.html").is_file()
