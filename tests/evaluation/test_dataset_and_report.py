"""Eval set loading with line-numbered errors; the evaluation run and its report."""

import json
from pathlib import Path

import pytest

from evaluation.dataset import EvalExample, EvalSetError, load_eval_set
from evaluation.report import write_report
from evaluation.runner import evaluate
from tests.conftest import SAMPLE_CORPUS, SAMPLE_EVAL


def test_sample_eval_set_points_at_sample_documents() -> None:
    examples = load_eval_set(SAMPLE_EVAL)
    corpus_ids = {json.loads(line)["id"] for line in SAMPLE_CORPUS.read_text().splitlines()}
    assert len(examples) == 178
    assert all(e.reference_answers and set(e.relevant_ids) <= corpus_ids for e in examples)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"question": "q"}\nnot json\n', "line 2: Expecting value"),
        ('{"question": ""}\n', "line 1: 'question' must be a non-empty string"),
        ('{"question": "q", "relevant_ids": "a"}\n', "'relevant_ids' must be a list of strings"),
        ("[1]\n", "line 1: expected a JSON object"),
        ("\n\n", "has no questions"),
    ],
)
def test_bad_eval_sets_are_refused_with_the_line(tmp_path: Path, content: str, message: str):
    path = tmp_path / "eval.jsonl"
    path.write_text(content)
    with pytest.raises(EvalSetError, match=message):
        load_eval_set(path)


def test_missing_eval_set(tmp_path: Path) -> None:
    with pytest.raises(EvalSetError, match="cannot read eval set .*missing.jsonl"):
        load_eval_set(tmp_path / "missing.jsonl")


def test_evaluate_and_report_list_the_misses(tmp_path: Path) -> None:
    examples = [
        EvalExample("1", "q1", ["Paris"], ["d1"]),
        EvalExample("2", "q2", ["Rome"], ["d2"]),
    ]
    answers = {"q1": ("Paris is the capital [1]", ["d1", "d3"]), "q2": ("unknown", ["d3"])}
    result = evaluate(lambda q: answers[q], examples, k=2)
    assert result.metrics["hit_rate_at_2"] == 0.5
    assert result.metrics["mrr_at_2"] == 0.5
    assert result.metrics["answer_contains_reference"] == 0.5
    assert result.metrics["questions"] == 2
    report, table = write_report(result, tmp_path / "out", "v1", {"model": "models:/m/1"})
    text = report.read_text()
    assert "# Evaluation report: v1" in text
    assert "| hit_rate_at_2 | 0.5000 |" in text
    assert "## Retrieval misses (1 of 2)" in text
    assert "| q2 | d2 | d3 |" in text
    rows = [json.loads(line) for line in table.read_text().splitlines()]
    assert [row["hit"] for row in rows] == [1.0, 0.0]
