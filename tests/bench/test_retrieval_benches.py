"""The retrieval benchmarks' pure parts: mode selection, the lever arithmetic, the splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.retrieval_data import rescoring_modes, select_modes
from bench.scifact_tuning import min_max, read_split, rrf, top, weighted


def test_every_mode_runs_with_and_without_rescoring() -> None:
    modes = rescoring_modes([0.5], depth=20)
    plain = [label for label in modes if "+ sentence" not in label]
    assert {"dense", "bm25", "hybrid rrf (k=60)", "hybrid weighted (0.5)"} <= set(plain)
    assert {mode.get("search_unit") for mode in modes.values()} == {None, "sentence", "both"}
    for label in plain:
        rescored = modes[f"{label} + sentence 0.5 (depth 20)"]
        assert rescored == {**modes[label], "sentence_weight": 0.5, "sentence_depth": 20}


def test_only_selects_by_substring_or_exact_label() -> None:
    modes = rescoring_modes([0.5], depth=20)
    assert set(select_modes(modes, "=hybrid weighted (0.5)")) == {"hybrid weighted (0.5)"}
    by_substring = select_modes(modes, "hybrid weighted (0.5)")
    assert "hybrid weighted (0.5) + sentence 0.5 (depth 20)" in by_substring
    assert "chunk + sentence signals: hybrid weighted (0.5)" in by_substring
    assert select_modes(modes, "") == modes
    assert select_modes(modes, "=no such mode") == {}


def test_weighted_fusion_normalises_each_signal_and_counts_absence_as_zero() -> None:
    dense = {1: 0.9, 2: 0.5}
    lexical = {2: 10.0, 3: 4.0}
    fused = weighted([dense, lexical], (0.5, 0.5))
    assert fused == pytest.approx({1: 0.5, 2: 0.5, 3: 0.0})
    assert min_max({7: 3.0}) == {7: 1.0}  # one candidate: nothing to separate
    assert weighted([dense, lexical], (1.0, 0.0)) == pytest.approx({1: 1.0, 2: 0.0})


def test_rrf_and_top() -> None:
    fused = rrf([{1: 0.9, 2: 0.5}, {2: 3.0, 3: 1.0}], constant=10)
    assert fused[2] == pytest.approx(1 / 12 + 1 / 11)
    assert fused[1] == pytest.approx(1 / 11) and fused[3] == pytest.approx(1 / 12)
    import numpy as np

    assert top(np.array([0.1, 0.7, 0.3]), 2) == pytest.approx({1: 0.7, 2: 0.3})


def test_read_split_keeps_each_splits_judged_queries(tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t1\n")
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n2\td2\t1\n2\td3\t1\n")
    lines = [json.dumps({"_id": q, "text": f"claim {q}"}) for q in ("1", "2", "3")]
    (tmp_path / "queries.jsonl").write_text("\n".join(lines) + "\n")

    assert read_split(tmp_path, "train") == ({"1": "claim 1"}, {"1": {"d1": 1}})
    assert read_split(tmp_path, "test") == ({"2": "claim 2"}, {"2": {"d2": 1, "d3": 1}})
