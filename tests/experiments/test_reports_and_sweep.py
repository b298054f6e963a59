"""Evaluation reports per version (with deltas), the report index, and sweeps with a cache."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from experiments.cli import cli
from tests.conftest import SAMPLE_CORPUS, SAMPLE_EVAL

pytestmark = pytest.mark.integration
SAMPLE = ["--data-path", str(SAMPLE_CORPUS), "--eval-path", str(SAMPLE_EVAL)]


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def report_json(run_id: str) -> dict:
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="evaluation")
    return json.loads((Path(path) / "metrics.json").read_text())


def version_metrics(version: str) -> dict[str, float]:
    tags = MlflowClient().get_model_version("rag-model", version).tags
    return {k.removeprefix("eval."): float(v) for k, v in tags.items() if k.startswith("eval.")
            and k not in ("eval.dataset_digest", "eval.run_id", "eval.dataset_name")}  # fmt: skip


def test_two_versions_get_reports_whose_deltas_are_right(tracking_store: str, tmp_path: Path):
    run("main", "--fake", *SAMPLE, "--max-questions", "40", "--k", "4")
    run("promote", "--version", "1")
    run("main", "--fake", *SAMPLE, "--max-questions", "40", "--k", "2", "--chunk-size", "400")
    client = MlflowClient()
    second = client.get_model_version("rag-model", "2")
    first_metrics, second_metrics = version_metrics("1"), version_metrics("2")
    data = report_json(second.tags["eval.run_id"])

    assert data["title"] == "rag-model version 2"
    assert data["dataset"]["digest"] == second.tags["eval.dataset_digest"]
    assert [(b["label"], b["version"]) for b in data["baselines"]] == [
        ("production", "1"),
        ("previous", "1"),
    ]
    # k differs (4 vs 2): versions compare on what each serves, hit_rate@own k
    for metric in ("hit_rate", "mrr", "ndcg_at_10", "rouge_l", "latency_p95_ms"):
        expected = second_metrics[metric] - first_metrics[metric]
        assert data["deltas"]["production"][metric] == pytest.approx(expected, abs=1e-4)
        assert data["deltas"]["previous"][metric] == pytest.approx(expected, abs=1e-4)
    assert [point["version"] for point in data["trend"]] == ["1", "2"]
    assert sorted(data["recall_curve"], key=int) == [str(n) for n in range(1, 11)]
    assert len(data["worst"]) == 10
    html = Path(
        mlflow.artifacts.download_artifacts(
            run_id=second.tags["eval.run_id"], artifact_path="evaluation/report.html"
        )
    ).read_text()
    assert "vs production (v1)" in html and html.count("data:image/png;base64,") == 3

    # the same versions on another dataset (20 questions: another digest) compare with nothing
    output = run("evaluate", "--version", "1", "--eval-path", str(SAMPLE_EVAL),
                 "--max-questions", "20")  # fmt: skip
    assert "evaluated rag-model version 1" in output
    first = client.get_model_version("rag-model", "1")
    assert first.tags["eval.dataset_digest"] != second.tags["eval.dataset_digest"]
    assert report_json(first.tags["eval.run_id"])["baselines"] == []
    assert first.tags["eval.questions"] == "20"

    site = tmp_path / "site"
    assert "2 version report(s) linked" in run("report", "--out", str(site))
    index = (site / "index.html").read_text()
    assert 'href="v1/report.html"' in index and 'href="v2/report.html"' in index
    assert (site / "v2" / "report.html").read_text() == html


def test_evaluate_refuses_an_unknown_version_in_one_line(tracking_store: str) -> None:
    result = CliRunner().invoke(cli, ["evaluate", "--model-name", "nope", "--version", "1"])
    assert result.exit_code == 1
    assert "registered model 'nope' does not exist" in result.output
    assert MlflowClient().search_runs([MlflowClient().search_experiments()[0].experiment_id]) == []


def test_sweep_logs_children_a_summary_and_reuses_embeddings(tracking_store: str, tmp_path):
    cache = tmp_path / "cache.sqlite3"
    grid = ["--chunk-sizes", "400,800", "--ks", "2,4", "--retrieval-modes", "dense,hybrid"]
    args = ["sweep", "--fake", *SAMPLE, "--max-questions", "30", *grid, "--cache", str(cache)]
    first = run(*args)
    assert "sweep of 8 configurations" in first
    second = run(*args)
    (first_misses,) = re.findall(r"(\d+) misses\)", first)
    (second_misses,) = re.findall(r"(\d+) misses\)", second)
    # every chunk, question and reference comes from the cache; only an answer that changed
    # (Chroma's parallel HNSW build may break a near-tie differently) is embedded again
    assert int(first_misses) > 500
    assert int(second_misses) <= int(first_misses) // 20

    client = MlflowClient()
    experiment = client.search_experiments()[0].experiment_id
    runs = client.search_runs([experiment], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 2
    parent = parents[-1]  # the first sweep
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 8
    configs = {(c.data.params["chunking.chunk_size"], c.data.params["retrieval.k"],
                c.data.params["retrieval.mode"]) for c in children}  # fmt: skip
    assert len(configs) == 8
    for child in children:
        k = child.data.params["retrieval.k"]
        expected = {f"hit_rate_at_{k}", f"recall_at_{k}", "ndcg_at_10", "map_at_10", "rouge_l",
                    "context_recall", "chunk_count", "build_seconds"}  # fmt: skip
        assert expected <= set(child.data.metrics)
    best = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=parent.info.run_id, artifact_path="sweep/best.json"
            )
        ).read_text()
    )
    best_ndcg = max(c.data.metrics["ndcg_at_10"] for c in children)
    assert best["ndcg_at_10"]["value"] == pytest.approx(best_ndcg, abs=1e-6)
    assert parent.data.tags["best.ndcg_at_10"] in {c.info.run_id for c in children}
    assert parent.data.metrics["configurations"] == 8


def test_sweep_refuses_bad_grids_before_any_work(tracking_store: str) -> None:
    for args, message in [
        (["--chunk-sizes", "400,abc"], "'400,abc' is not a comma-separated list of ints"),
        (["--ks", "0"], "values must be >= 1"),
        (["--retrieval-modes", "dense,magic"], "retrieval.mode"),
        (["--chunk-sizes", "50", "--chunk-overlaps", "100"], "chunk_overlap must be less than"),
    ]:
        result = CliRunner().invoke(cli, ["sweep", "--fake", *SAMPLE, *args])
        assert result.exit_code != 0
        assert message in result.output, result.output
    assert MlflowClient().search_runs([MlflowClient().search_experiments()[0].experiment_id]) == []


def test_sweep_keeps_the_base_configs_value_on_every_axis_not_given(
    tracking_store: str, tmp_path: Path
) -> None:
    config = tmp_path / "my.yaml"
    config.write_text("chunking: {chunk_size: 300, chunk_overlap: 30}\nretrieval: {mode: bm25}\n")
    args = ["sweep", "--fake", *SAMPLE, "--max-questions", "5", "--no-cache", "--ks", "2,3"]
    output = run(*args, "--config", str(config))
    assert "sweep of 2 configurations" in output
    client = MlflowClient()
    runs = client.search_runs([client.search_experiments()[0].experiment_id])
    children = [r.data.params for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(
        (
            p["chunking.chunk_size"],
            p["chunking.chunk_overlap"],
            p["retrieval.mode"],
            p["retrieval.k"],
        )
        for p in children
    ) == [("300", "30", "bm25", "2"), ("300", "30", "bm25", "3")]
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.data.params["sweep.chunk_sizes"] == "[300]"
    assert parent.data.tags["rag_model.eval_path"] == str(SAMPLE_EVAL.resolve())
    assert not (tmp_path / ".rag-model").exists()


def test_an_empty_sweep_axis_means_the_base_configs_value() -> None:
    from experiments.sweep import grid_from_options
    from rag_model.config import RagConfig

    base = RagConfig.from_dict({"chunking": {"chunk_size": 300}, "retrieval": {"k": 7}})
    grid = grid_from_options(base, "", " ", "", "", "dense,hybrid")
    assert (grid.strategies, grid.chunk_sizes, grid.ks) == (["recursive"], [300], [7])
    assert grid.modes == ["dense", "hybrid"]
