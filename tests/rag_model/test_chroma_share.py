"""Tests for the per-host shared working copy of a snapshot's Chroma folder (chroma_share)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rag_model.chroma_share import ROOT_ENV, USERS_NAME, SharedCopy, copy_key, shared_root
from rag_model.index import CHROMA_DIR, ChromaIndex
from rag_model.manifest import file_digests
from tests.rag_model.test_index import _build, _vector

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "shared"
    monkeypatch.setenv(ROOT_ENV, str(folder))  # inherited by the subprocesses below
    return folder


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "snapshot" / "chroma"
    (folder / "segment").mkdir(parents=True)
    (folder / "chroma.sqlite3").write_bytes(b"sqlite" * 100)
    (folder / "segment" / "data_level0.bin").write_bytes(b"\1" * 1000)
    return folder


def copies(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def holder(code: str) -> tuple[subprocess.Popen, list[str]]:
    """A Python process that runs ``code``, prints 'held' and waits for a line on stdin.

    Returns the process and the lines ``code`` printed.
    """
    script = textwrap.dedent(code) + "\nprint('held', flush=True)\nsys.stdin.readline()\n"
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys\n" + script],
        cwd=PROJECT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    printed = []
    for line in process.stdout:
        if line.strip() == "held":
            return process, printed
        printed.append(line.strip())
    raise AssertionError(f"the holder ended before holding: {printed}")


def finish(process: subprocess.Popen) -> None:
    process.communicate("go\n", timeout=60)
    assert process.returncode == 0


def test_the_root_defaults_to_a_per_user_temporary_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ROOT_ENV, raising=False)
    assert shared_root().name.startswith("rag-model-chroma-")


def test_the_key_depends_on_the_snapshot_path_and_manifest(tmp_path: Path) -> None:
    key = copy_key(tmp_path / "a", b"{}")
    assert copy_key(tmp_path / "a", b"{}") == key
    assert copy_key(tmp_path / "b", b"{}") != key
    assert copy_key(tmp_path / "a", b'{"files": {}}') != key


def test_the_first_holder_copies_and_the_next_shares(root: Path, source: Path) -> None:
    first = SharedCopy.acquire(source, "k1")
    second = SharedCopy.acquire(source, "k1")

    assert (first.copied, second.copied) == (True, False)
    assert copies(root) == ["k1"]
    assert first.path != second.path  # a path of its own per holder (chromadb caches by path)
    assert first.path.resolve() == second.path.resolve() == root / "k1" / "chroma"
    assert (second.path / "segment" / "data_level0.bin").read_bytes() == b"\1" * 1000
    first.release()
    assert copies(root) == ["k1"]  # still held by the second
    second.release()
    second.release()  # idempotent
    assert copies(root) == []
    assert not first.path.parent.exists()


def test_a_holder_in_another_process_keeps_the_copy(root: Path, source: Path) -> None:
    other, printed = holder(f"""
        from pathlib import Path
        from rag_model.chroma_share import SharedCopy
        held = SharedCopy.acquire(Path({str(source)!r}), "k1")
        print(held.copied)
        """)
    mine = SharedCopy.acquire(source, "k1")
    assert printed == ["True"]
    assert mine.copied is False
    mine.release()
    assert copies(root) == ["k1"]

    finish(other)  # exits without releasing: its lock goes with the process
    leftover = SharedCopy.acquire(source, "k2")  # any later acquire sweeps unused copies
    assert copies(root) == ["k2"]
    leftover.release()


def test_leftovers_of_crashed_copiers_are_replaced(root: Path, source: Path) -> None:
    (root / "k1").mkdir(parents=True)  # renamed but never finished: no users file
    (root / "k1" / "stale").write_text("x")
    (root / "k9.partial").mkdir()

    held = SharedCopy.acquire(source, "k1")

    assert held.copied is True
    assert copies(root) == ["k1"]
    assert sorted(p.name for p in (root / "k1").iterdir()) == ["chroma", USERS_NAME]
    held.release()


@pytest.mark.integration  # real Chroma opened by a second interpreter (seconds)
def test_indexes_share_one_host_copy_and_leave_the_snapshot_unchanged(
    root: Path, tmp_path: Path
) -> None:
    snapshot = tmp_path / "index"
    _build(snapshot)
    before = file_digests(snapshot)
    first, second = ChromaIndex.open(snapshot), ChromaIndex.open(snapshot)
    try:
        # k=2: past the two bridge chunks the hash embedder scores ties (0.0) in any order
        expected = [hit.id for hit in first.query(_vector("bridge"), k=2)]
        other, printed = holder(f"""
            from pathlib import Path
            from rag_model.index import ChromaIndex
            from tests.rag_model.test_index import _vector
            index = ChromaIndex.open(Path({str(snapshot)!r}), verify=False)
            print([hit.id for hit in index.query(_vector("bridge"), k=2)], index._copy.copied)
            """)
        assert [hit.id for hit in second.query(_vector("bridge"), k=2)] == expected
        assert len(copies(root)) == 1
        first.close()
        assert [hit.id for hit in second.query(_vector("bridge"), k=2)] == expected
        assert printed == [f"{expected} False"]  # the other process opened the same copy
        finish(other)
    finally:
        first.close()
        second.close()

    assert copies(root) == []
    assert file_digests(snapshot) == before
    assert (snapshot / CHROMA_DIR).is_dir()
