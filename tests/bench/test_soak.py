"""bench/soak.py: its options are checked, and a seconds-long soak prints the report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from bench.soak import parse_args
from tests.conftest import PROJECT, use_tracking_store
from tests.serving.live import log_version


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--minutes", "0"], "--minutes must be > 0, got 0.0"),
        (["--clients", "-1"], "--clients must be > 0, got -1"),
    ],
)
def test_bad_options_get_one_line_naming_them(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_model_without_a_tracking_store_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(SystemExit):
        parse_args(["--model", "models:/x@production"])
    assert "--model needs MLFLOW_TRACKING_URI" in capsys.readouterr().err


@pytest.mark.slow
def test_a_short_soak_prints_load_and_memory_per_worker(tmp_path: Path) -> None:
    uri = use_tracking_store(tmp_path / "mlflow")
    version, _ = log_version(tmp_path, 800, name="soak")
    MlflowClient().set_registered_model_alias("soak", "production", version)
    done = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--minutes", "0.05", "--clients", "2"]
        + ["--workers", "1", "--warmup-seconds", "1", "--sample-seconds", "1"]
        + ["--model", "models:/soak@production"],
        cwd=PROJECT,
        env={**os.environ, "MLFLOW_TRACKING_URI": uri},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    load = lines[lines.index("| requests | errors | req/s | p50 ms | p99 ms |") + 2]
    assert load.split("|")[2].strip() == "0"  # no errors
    workers = [line for line in lines if line.startswith("| ") and line.endswith("% |")]
    assert len(workers) == 1  # one RSS row per worker, growth last
    assert lines[-1].startswith("| end | ")
