"""Progress of long steps: one line per step in a log, nothing under --quiet."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_model import progress
from rag_model.build import build_snapshot
from rag_model.config import RagConfig


def test_a_step_in_a_log_prints_one_line_with_its_count(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert list(progress.steps(range(3), "chroma write", True, "batch")) == [0, 1, 2]
    with progress.timed_step("bm25", True, "3 chunks"):
        pass
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[rag-model] chroma write: 3 batches in ")
    assert lines[1].startswith("[rag-model] bm25 (3 chunks) in ")


def test_a_long_step_also_prints_its_count_so_far(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "HEARTBEAT_SECONDS", 0.0)
    list(progress.steps(range(2), "embedding", True, "block"))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("[rag-model] embedding: 1/2 blocks after ")
    assert lines[-1].startswith("[rag-model] embedding: 2 blocks in ")


def test_a_build_names_every_step_and_quiet_prints_nothing(
    capsys: pytest.CaptureFixture[str], corpus_dir: Path, tmp_path: Path
) -> None:
    config = RagConfig.from_dict({"embedding": {"model": "hash-embedder"}})  # extractive
    build_snapshot(config, corpus_dir, tmp_path / "loud", progress=True)
    err = capsys.readouterr().err
    for step in ("read documents", "chunking", "chunk vectors:", "embedding:", "chroma write:",
                 "bm25", "sentence vectors:"):  # fmt: skip
        assert f"[rag-model] {step}" in err, step
    build_snapshot(config, corpus_dir, tmp_path / "quiet", progress=False)
    assert capsys.readouterr().err == ""
