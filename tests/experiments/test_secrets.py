"""Secrets: the whole flow with API keys set stores neither key anywhere, and logs no pickle.

`rag-model main` (build, evaluate with an LLM judge, register, report), `promote` and `report`
run as real processes against a temporary store, with the generator and the judge pointed at
local OpenAI-compatible servers that accept only the keys. Then every byte under the store
(SQLite database, artifacts: MLmodel, conda.yaml, requirements, reports, questions.jsonl ...),
the report site and the commands' output are searched for the keys.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import PROJECT, SAMPLE_CORPUS, SAMPLE_EVAL
from tests.evaluation.test_judge import FakeJudge
from tests.rag_model.packaging.test_bad_artifacts import pickles_under
from tests.rag_model.test_llm import FakeLLM

pytestmark = pytest.mark.slow


def rag_model(cwd: Path, env: dict[str, str], *args: str) -> str:
    """Run the `rag-model` command as a process; return everything it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "experiments.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def pieces(secret: str, size: int = 16) -> list[str]:
    """Every ``size``-character piece of ``secret``: a partial copy is a leak too."""
    return [secret[start : start + size] for start in range(len(secret) - size + 1)]


def holds(text: str | bytes, secret: str) -> bool:
    data = text.encode() if isinstance(text, str) else text
    return any(piece.encode() in data for piece in pieces(secret))


def files_holding(root: Path, secret: str) -> list[str]:
    return sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and holds(path.read_bytes(), secret)
    )


def test_api_keys_are_stored_nowhere_and_nothing_logged_is_a_pickle(tmp_path: Path) -> None:
    # random, so a match can only be a leak; any 16 characters of the hex part count
    llm_secret, judge_secret = secrets.token_hex(16), secrets.token_hex(16)
    llm, judge = FakeLLM(key=f"sk-{llm_secret}"), FakeJudge(key=f"sk-{judge_secret}")
    config = tmp_path / "openai.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "embedding": {"model": "hash-embedder"},
                "generation": {
                    "generator": "openai",
                    "model": "ok",
                    "base_url": llm.url,
                    "max_retries": 0,
                },
            }
        )
    )
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
        "MLFLOW_TRACKING_URI": store,
        "MLFLOW_REGISTRY_URI": store,
        "OPENAI_API_KEY": f"sk-{llm_secret}",
        "RAG_JUDGE_KEY": f"sk-{judge_secret}",
        "PYTHONPATH": str(PROJECT),  # this checkout's code, run from tmp_path (./mlruns there)
    }
    try:
        output = rag_model(
            tmp_path, env, "main", "--config", str(config),
            "--data-path", str(SAMPLE_CORPUS), "--eval-path", str(SAMPLE_EVAL),
            "--max-questions", "3", "--judge-base-url", judge.url, "--judge-model", "judge",
            "--judge-api-key-env", "RAG_JUDGE_KEY",
        )  # fmt: skip
        output += rag_model(tmp_path, env, "promote")
        output += rag_model(tmp_path, env, "report", "--out", str(tmp_path / "site"))
    finally:
        llm.server.shutdown()
        judge.server.shutdown()

    # the keys were really used: both servers refuse any other
    assert llm.calls and judge.calls
    assert "rag-model@production -> version 1: promoted" in output
    client = MlflowClient(store, registry_uri=store)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments)
    version = client.get_model_version("rag-model", "1")
    assert "faithfulness" in client.get_run(version.run_id).data.metrics
    tracked = json.dumps(
        {
            "runs": [[run.data.params, run.data.tags, sorted(run.data.metrics)] for run in runs],
            "versions": [
                [v.tags, v.description, v.source]
                for v in client.search_model_versions("name = 'rag-model'")
            ],
            "models": [
                [m.tags, m.description, m.aliases] for m in client.search_registered_models()
            ],
            "logged_models": [[m.params, m.tags] for m in client.search_logged_models(experiments)],
        }
    )
    for secret in (llm_secret, judge_secret):
        assert not holds(tracked, secret)
        assert not holds(output, secret)
        # every file: the SQLite store, ./mlruns (models, MLmodel, conda.yaml, requirements,
        # reports, questions.jsonl, datasets), the report site, the config
        assert files_holding(tmp_path, secret) == []
    artifacts = tmp_path / "mlruns"
    assert {p.name for p in artifacts.rglob("MLmodel")} == {"MLmodel"}
    assert {p.name for p in artifacts.rglob("questions.jsonl")} == {"questions.jsonl"}
    assert pickles_under(artifacts) == []
