"""`mlflow run` on the MLproject entry points, offline, against a temporary SQLite store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from rag_model.packaging.loading import load_pipeline
from tests.conftest import FAKE_CONFIG, PROJECT, SAMPLE_CORPUS, SAMPLE_EVAL

pytestmark = pytest.mark.slow


def mlflow_run_command(
    tmp_path: Path, entry: str, *params: str, store: str | None = None
) -> tuple[list[str], dict[str, str]]:
    """The ``mlflow run`` command line and environment for ``entry`` against ``store``.

    ``store`` defaults to a SQLite file in ``tmp_path``.
    """
    args = [
        sys.executable,
        "-m",
        "mlflow",
        "run",
        str(PROJECT),
        "-e",
        entry,
        "--env-manager",
        "local",
        "--experiment-name",
        "tests",
    ]
    for param in params:
        args += ["-P", param]
    inherited = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID")
    }
    store = store or f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {
        **inherited,
        "MLFLOW_TRACKING_URI": store,
        "MLFLOW_REGISTRY_URI": store,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    return args, env


def mlflow_run(tmp_path: Path, entry: str, *params: str) -> subprocess.CompletedProcess[str]:
    args, env = mlflow_run_command(tmp_path, entry, *params)
    # run from tmp_path so the default artifact folder (./mlruns) lands there
    return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_main_then_promote(tmp_path: Path) -> None:
    config = tmp_path / "fake.yaml"
    config.write_text(yaml.safe_dump(FAKE_CONFIG))
    main = mlflow_run(
        tmp_path,
        "main",
        f"data_path={SAMPLE_CORPUS}",
        f"eval_path={SAMPLE_EVAL}",
        "k=3",
        "chunk_size=500",
        "chunk_overlap=50",
        f"config={config}",
        "model_name=demo",
    )
    assert main.returncode == 0, main.stderr[-3000:]
    assert "registered demo version 1 as @candidate" in main.stdout
    promote = mlflow_run(tmp_path, "promote", "model_name=demo", "version=candidate")
    assert promote.returncode == 0, promote.stderr[-3000:]
    assert "demo@production -> version 1: promoted" in promote.stdout
    listing = mlflow_run(tmp_path, "history", "model_name=demo")
    assert listing.returncode == 0, listing.stderr[-3000:]
    assert "promoted           1     -" in listing.stdout
    assert "@production now: version 1" in listing.stdout
    client = MlflowClient(store := f"sqlite:///{tmp_path / 'mlflow.db'}", registry_uri=store)
    production = client.get_model_version_by_alias("demo", "production")
    params = client.get_run(production.run_id).data.params
    assert params["retrieval.k"] == "3"
    assert params["chunking.chunk_size"] == "500"
    assert params["embedding.model"] == "hash-embedder"


def test_invalid_integer_param_fails_the_run_with_a_clear_message(tmp_path: Path) -> None:
    done = mlflow_run(
        tmp_path, "main", f"data_path={SAMPLE_CORPUS}", f"eval_path={SAMPLE_EVAL}", "k=three"
    )
    assert done.returncode != 0
    assert "Invalid value for '--k': 'three' is not an integer" in done.stderr
    client = MlflowClient(store := f"sqlite:///{tmp_path / 'mlflow.db'}", registry_uri=store)
    (run,) = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert run.info.status == "FAILED"
    assert "'three' is not an integer" in run.data.tags["error"]
    assert client.search_registered_models() == []


def test_sweep_entry_point_logs_child_runs(tmp_path: Path) -> None:
    config = tmp_path / "fake.yaml"
    config.write_text(yaml.safe_dump(FAKE_CONFIG))
    done = mlflow_run(
        tmp_path,
        "sweep",
        f"data_path={SAMPLE_CORPUS}",
        f"eval_path={SAMPLE_EVAL}",
        f"config={config}",
        "max_questions=20",
        "chunk_sizes=400,800",
        "ks=2,4",
        "retrieval_modes=hybrid",
        f"cache={tmp_path / 'cache.sqlite3'}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sweep of 4 configurations" in done.stdout
    client = MlflowClient(store := f"sqlite:///{tmp_path / 'mlflow.db'}", registry_uri=store)
    runs = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4 and all(c.info.status == "FINISHED" for c in children)
    assert parent.info.status == "FINISHED"
    assert {"best_ndcg_at_10", "best_hit_rate", "sweep_seconds"} <= set(parent.data.metrics)
    assert "ndcg_at_10" in children[0].data.metrics


def test_a_bad_sweep_list_fails_the_run_with_the_reason(tmp_path: Path) -> None:
    done = mlflow_run(
        tmp_path,
        "sweep",
        f"data_path={SAMPLE_CORPUS}",
        f"eval_path={SAMPLE_EVAL}",
        "ks=2,x",
        "max_questions=5",
    )
    assert done.returncode != 0
    assert "'2,x' is not a comma-separated list of ints" in done.stderr
    client = MlflowClient(store := f"sqlite:///{tmp_path / 'mlflow.db'}", registry_uri=store)
    (run,) = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert run.info.status == "FAILED"
    assert "is not a comma-separated list" in run.data.tags["error"]


def test_two_runs_at_once_into_one_store_and_one_registered_model(
    tmp_path: Path, tracking_store: str
) -> None:
    # The store exists already, as a team's does (the fixture created its tables): MLflow's
    # own schema creation on an empty SQLite file is not safe to race (the second process
    # fails with "table ... already exists").
    config = tmp_path / "fake.yaml"
    config.write_text(yaml.safe_dump(FAKE_CONFIG))
    runs = []
    for chunk_size in (400, 800):
        args, env = mlflow_run_command(
            tmp_path,
            "build_index",
            f"data_path={SAMPLE_CORPUS}",
            f"chunk_size={chunk_size}",
            "chunk_overlap=50",
            f"config={config}",
            "model_name=shared",
            store=tracking_store,
        )
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
        runs.append(subprocess.Popen(args, cwd=tmp_path, env=env, **pipes))  # both at once
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (stdout, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr[-3000:]
        assert "registered as shared version" in stdout
    client = MlflowClient()
    versions = sorted(client.search_model_versions("name='shared'"), key=lambda v: int(v.version))
    assert [str(v.version) for v in versions] == ["1", "2"]
    first, second = (client.get_run(v.run_id).info for v in versions)
    assert first.run_id != second.run_id
    # the two runs overlapped in time: each started before the other ended
    assert first.start_time < second.end_time and second.start_time < first.end_time
    chunk_sizes = set()
    for version in versions:
        run = client.get_run(version.run_id)
        assert run.info.status == "FINISHED"
        chunk_sizes.add(run.data.params["chunking.chunk_size"])
        # every artifact file is checked against the version's manifest on load
        pipeline = load_pipeline(f"models:/shared/{version.version}")
        assert pipeline.config.chunking.chunk_size == int(run.data.params["chunking.chunk_size"])
        assert pipeline.answer("What is oxygen?").sources
        pipeline.index.close()
    assert chunk_sizes == {"400", "800"}
