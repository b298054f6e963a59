"""The main and promote commands on a temporary SQLite store (fake embedder: fast)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from experiments.cli import cli
from tests.conftest import SAMPLE_CORPUS, SAMPLE_EVAL


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.integration
def test_main_registers_an_evaluated_candidate_and_promote_moves_production(
    tracking_store: str,
) -> None:
    result = run(
        "main",
        "--fake",
        "--data-path",
        str(SAMPLE_CORPUS),
        "--eval-path",
        str(SAMPLE_EVAL),
        "--k",
        "3",
        "--chunk-size",
        "600",
    )
    assert result.exit_code == 0, result.output
    assert "registered rag-model version 1 as @candidate" in result.output
    client = MlflowClient()
    version = client.get_model_version_by_alias("rag-model", "candidate")
    assert float(version.tags["eval.hit_rate_at_3"]) > 0.3
    assert version.tags["eval.dataset_digest"]
    run_data = client.get_run(version.run_id).data
    assert run_data.params["retrieval.k"] == "3"
    assert run_data.params["chunking.chunk_size"] == "600"
    assert run_data.params["chunking.chunk_overlap"] == "100"  # the config default
    assert {
        "hit_rate_at_3", "recall_at_3", "mrr_at_3", "ndcg_at_10", "map_at_10", "rouge_l",
        "context_recall", "semantic_similarity", "chunk_count", "index_bytes", "build_seconds",
        "latency_p95_ms", "latency_p99_ms",
    } <= set(run_data.metrics)  # fmt: skip
    # the numbers of this command before evaluation went through mlflow.genai.evaluate
    # (commit a7634a9); context recall/precision changed meaning since (coverage)
    before = {
        "hit_rate_at_3": 0.8820224719101124, "recall_at_3": 0.8820224719101124,
        "mrr_at_3": 0.7471910112359551, "ndcg_at_10": 0.8019776202536614,
        "map_at_10": 0.7580123060460139, "contains_reference": 0.4550561797752809,
        "exact_match": 0.0056179775280898875, "string_present": 0.4606741573033708,
        "rouge_l": 0.12169513729395877, "semantic_similarity": 0.20496291624966337,
        "questions": 178.0, "recall_curve": 0.9325842696629213, "chunk_count": 311.0,
    }  # fmt: skip
    got = {name: run_data.metrics[name] for name in before}
    # one question's worth of slack: in the full suite (2 loaded cores) one question of 178
    # ranked differently once (mrr 0.7444 for 0.7472) while every run alone gave these exact
    # figures; suspected: Chroma's HNSW index built by several threads. A regression moves more
    assert got == pytest.approx(before, rel=0, abs=1.01 / 178)
    artifacts = {a.path for a in client.list_artifacts(version.run_id, "evaluation")}
    assert artifacts == {
        f"evaluation/{name}"
        for name in ("report.html", "report.md", "metrics.json", "questions.jsonl")
    }

    promoted = run("promote")
    assert promoted.exit_code == 0
    assert promoted.output.splitlines() == [
        "rag-model@production -> version 1: promoted",
        "  no production version yet: the first evaluated version",
    ]
    assert str(client.get_model_version_by_alias("rag-model", "production").version) == "1"
    tags = client.get_model_version("rag-model", "1").tags
    assert tags["promotion.decision"] == "promoted"
    assert tags["eval.hit_rate"] == tags["eval.hit_rate_at_3"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--k", "abc"], 2, "Invalid value for '--k': 'abc' is not an integer"),
        (["--k", "0"], 2, "Invalid value for '--k': 0 is below the minimum 1"),
        (["--chunk-overlap", "900"], 1, "chunk_overlap must be less than chunk_size"),
        (["--config", "/nonexistent.yaml"], 1, "cannot read config file /nonexistent.yaml"),
        (["--eval-path", "/nonexistent.jsonl"], 1, "eval set /nonexistent.jsonl does not exist"),
    ],
)
def test_main_rejects_bad_parameters(
    tracking_store: str, args: list[str], code: int, message: str
) -> None:
    result = run("main", "--fake", *args)
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.integration
def test_failed_main_ends_failed_and_registers_nothing(tracking_store: str, tmp_path: Path):
    result = run(
        "main", "--fake", "--data-path", str(tmp_path / "missing"), "--eval-path", str(SAMPLE_EVAL)
    )
    assert result.exit_code == 1
    assert f"data path {tmp_path / 'missing'} does not exist" in result.output
    client = MlflowClient()
    (failed,) = client.search_runs(client.search_experiments()[0].experiment_id.split())
    assert failed.info.status == "FAILED"
    assert "does not exist" in failed.data.tags["error"]
    assert client.search_registered_models() == []


def test_promote_errors_are_one_clear_line(tracking_store: str) -> None:
    result = run("promote", "--model-name", "nope")
    assert result.exit_code == 1
    assert "registered model 'nope' does not exist" in result.output
    assert run("promote", "--alias", "3").exit_code == 2
    assert "--tolerance" in run("promote", "--tolerance", "-1").output
    assert run("promote", "--tolerance", "x").exit_code == 2
