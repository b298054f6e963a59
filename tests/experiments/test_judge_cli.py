"""`main` with an LLM judge: judged metrics are logged, the key is stored nowhere."""

from __future__ import annotations

import json

import mlflow
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from experiments.cli import cli
from tests.conftest import SAMPLE_CORPUS, SAMPLE_EVAL
from tests.evaluation.test_judge import KEY, FakeJudge

pytestmark = pytest.mark.integration


def test_main_with_a_judge_logs_judged_metrics_and_never_the_key(
    tracking_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeJudge()
    monkeypatch.setenv("MY_JUDGE_KEY", KEY)
    try:
        result = CliRunner().invoke(
            cli,
            ["main", "--fake", "--data-path", str(SAMPLE_CORPUS), "--eval-path", str(SAMPLE_EVAL),
             "--max-questions", "3", "--judge-base-url", server.url,
             "--judge-model", "judge-model", "--judge-api-key-env", "MY_JUDGE_KEY"],
            catch_exceptions=False,
        )  # fmt: skip
    finally:
        server.server.shutdown()
    assert result.exit_code == 0, result.output
    client = MlflowClient()
    version = client.get_model_version_by_alias("rag-model", "candidate")
    run = client.get_run(version.run_id)
    assert run.data.metrics["faithfulness"] == 1.0
    assert "answer_relevancy" in run.data.metrics and "llm_context_precision" in run.data.metrics
    traces = mlflow.search_traces(run_id=version.run_id, return_type="list")
    judged = [a for t in traces for a in t.info.assessments if a.name == "faithfulness"]
    assert len(judged) == 3  # one per question, by the judge
    assert {(a.source.source_type, a.source.source_id) for a in judged} == {
        ("LLM_JUDGE", "judge-model")
    }
    stored = json.dumps([run.data.params, run.data.tags, version.tags]) + result.output
    assert KEY not in stored
