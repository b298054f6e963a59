"""``rag-model diff`` and the diff ``main`` logs against @production (fake embedder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from experiments.cli import cli
from tests.conftest import SAMPLE_CORPUS, SAMPLE_EVAL

pytestmark = pytest.mark.integration


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def changed_corpus(folder: Path) -> tuple[Path, dict[str, str]]:
    """The sample with one document edited, one removed and one added."""
    records = [json.loads(line) for line in SAMPLE_CORPUS.read_text().splitlines()]
    edited, removed = records[3]["id"], records[5]["id"]
    records[3]["text"] += " An added closing sentence."
    del records[5]
    records.append({"id": "Added-000", "text": "A new document about glaciers and ice ages."})
    folder.mkdir()
    path = folder / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path, {"changed": edited, "removed": removed, "added": "Added-000"}


def test_main_logs_the_diff_against_production_and_diff_prints_it(
    tracking_store: str, tmp_path: Path
) -> None:
    common = ["--fake", "--eval-path", str(SAMPLE_EVAL), "--max-questions", "5", "--quiet"]
    first = run("main", "--data-path", str(SAMPLE_CORPUS), *common)
    assert first.exit_code == 0, first.output
    client = MlflowClient()
    assert "diff.documents_added" not in client.get_model_version("rag-model", "1").tags
    assert run("promote").exit_code == 0

    data, expected = changed_corpus(tmp_path / "v2")
    second = run("main", "--data-path", str(data), "--k", "3", *common)
    assert second.exit_code == 0, second.output

    version = client.get_model_version("rag-model", "2")
    counts = {kind: version.tags[f"diff.documents_{kind}"] for kind in expected}
    assert counts == {"added": "1", "removed": "1", "changed": "1"}
    run_tags = client.get_run(version.run_id).data.tags
    assert run_tags["diff.documents_changed"] == "1"
    assert run_tags["diff.against"] == "production (1)"
    logged = json.loads(
        Path(client.download_artifacts(version.run_id, "diff/production.json")).read_text()
    )
    assert {kind: logged["documents"][kind] for kind in expected} == {
        kind: [identifier] for kind, identifier in expected.items()
    }
    assert logged["config"]["retrieval.k"] == [4, 3]
    report = Path(client.download_artifacts(version.run_id, "evaluation/report.md")).read_text()
    assert "## What changed against production" in report
    assert f"- changed: {expected['changed']}" in report
    html = Path(client.download_artifacts(version.run_id, "evaluation/report.html")).read_text()
    assert 'id="changes"' in html and expected["removed"] in html

    printed = run("diff", "production", "2")
    assert printed.exit_code == 0, printed.output
    lines = printed.output.splitlines()
    assert lines[0] == "diff production (1) -> 2"
    assert "documents: 1 added, 1 removed, 1 changed, 176 unchanged" in lines[2]
    assert f"  + {expected['added']}" in lines
    assert f"  - {expected['removed']}" in lines
    assert f"  ~ {expected['changed']}" in lines
    assert "  retrieval.k: 4 -> 3" in lines
    assert any(line.startswith("  hit_rate ") for line in lines)

    as_json = json.loads(run("diff", "1", "@candidate", "--json").output)
    assert as_json["documents"]["added"] == ["Added-000"]

    missing = run("diff", "production", "9")
    assert missing.exit_code == 1
    assert "9" in missing.output
