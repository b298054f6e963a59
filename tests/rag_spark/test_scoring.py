"""Batch scoring and evaluation on Spark with the sample MiniLM model (spark_udf, local[2])."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from evaluation.dataset import load_eval_set
from evaluation.runner import evaluate
from experiments.cli import cli
from experiments.version_report import REPORT_DIR
from rag_model.errors import QueryError
from rag_model.packaging.loading import load_pipeline
from rag_model.packaging.registry import register_version
from rag_model.packaging.schema import model_signature
from rag_spark.scoring import RESULT_TYPE, score_questions
from tests.conftest import SAMPLE_EVAL, RegisteredModel

pytestmark = pytest.mark.integration

QUESTIONS = [
    "In what country is Normandy located?",
    "What is the chemical symbol of oxygen?",
    "Who invented the atmospheric engine?",
]
EVAL_QUESTIONS = 8


def _fields(data_type: Any) -> Any:
    """A Spark type as nested sorted (name, type) pairs: struct field order does not matter."""
    from pyspark.sql.types import ArrayType, StructType

    if isinstance(data_type, StructType):
        return sorted((field.name, _fields(field.dataType)) for field in data_type.fields)
    if isinstance(data_type, ArrayType):
        return ["array", _fields(data_type.elementType)]
    return data_type.simpleString()


def _exact(source: dict[str, Any]) -> dict[str, Any]:
    return {n: v for n, v in source.items() if n not in ("score", "scores")}


def _scores(source: dict[str, Any]) -> list[float]:
    scores = json.loads(source["scores"])
    return [source["score"], *(scores.get(n, -1.0) for n in ("dense", "lexical", "fused"))]


def test_the_result_type_is_the_signature_output_schema(spark: Any) -> None:
    from mlflow.pyfunc import _infer_spark_udf_return_type
    from pyspark.sql.types import StructType

    declared = StructType.fromDDL(RESULT_TYPE)
    inferred = _infer_spark_udf_return_type(model_signature().outputs)

    assert _fields(declared) == _fields(inferred)


def test_spark_udf_answers_like_the_pyfunc_model_whatever_the_column_order(
    spark: Any, minilm_model: RegisteredModel
) -> None:
    minilm_model.activate()
    # the questions are not the first column: the signature, not the position, picks them
    frame = spark.createDataFrame(
        [(f"q{n}", "unused", question) for n, question in enumerate(QUESTIONS)],
        ["id", "note", "question"],
    ).coalesce(1)  # one task, one model load

    scored = score_questions(frame, minilm_model.model_uri, {"k": 3}).orderBy("id")
    rows = scored.collect()

    assert scored.columns == ["id", "note", "question", "prediction"]
    model = mlflow.pyfunc.load_model(minilm_model.model_uri)
    expected = model.predict(pd.DataFrame({"question": QUESTIONS}), params={"k": 3})
    got = [row["prediction"].asDict(recursive=True) for row in rows]
    assert [row["id"] for row in rows] == ["q0", "q1", "q2"]
    assert [g["answer"] for g in got] == [e["answer"] for e in expected]
    assert [g["citations"] for g in got] == [e["citations"] for e in expected]
    for g, e in zip(got, expected, strict=True):
        assert len(g["sources"]) == 3
        # Spark's workers run torch on one thread: float noise in the scores, nothing else
        assert [_exact(s) for s in g["sources"]] == [_exact(s) for s in e["sources"]]
        assert [x for s in g["sources"] for x in _scores(s)] == pytest.approx(
            [x for s in e["sources"] for x in _scores(s)], abs=1e-5
        )


def test_a_frame_without_a_question_column_is_refused(spark: Any) -> None:
    frame = spark.createDataFrame([("What is oxygen?",)], ["query"])

    with pytest.raises(
        QueryError, match=r"the DataFrame needs a 'question' column of strings, got \['query'\]"
    ):
        score_questions(frame, "models:/rag-model/1")


def test_evaluate_on_spark_gives_the_local_metrics_and_answers(
    spark: Any, minilm_model: RegisteredModel, tmp_path: Path
) -> None:
    minilm_model.activate()
    mlflow.set_experiment("spark-evaluation")
    # a version of its own: the evaluation tags must not touch the shared @production version
    version = register_version(minilm_model.model_uri, "rag-model-spark").version

    result = CliRunner().invoke(
        cli,
        ["evaluate", "--model-name", "rag-model-spark", "--version", str(version)]
        + ["--eval-path", str(SAMPLE_EVAL), "--max-questions", str(EVAL_QUESTIONS)]
        + ["--predict-with", "spark"],
        catch_exceptions=False,
    )

    assert result.exit_code == 0, result.output
    assert f"evaluated rag-model-spark version {version} (run " in result.output
    run_id = result.output.split("(run ")[1].split(")")[0]
    run = MlflowClient().get_run(run_id)
    assert run.data.tags["rag_model.predict_with"] == "spark"
    examples = load_eval_set(SAMPLE_EVAL, limit=EVAL_QUESTIONS).examples
    local = evaluate(load_pipeline(minilm_model.model_uri), examples)
    on_spark = {  # recall_curve is a series; "<metric>/mean" are MLflow GenAI's aggregates
        n: v for n, v in run.data.metrics.items() if n != "recall_curve" and "/" not in n
    }
    # per-question latency has no meaning in a batch: Spark evaluations record none
    assert not [name for name in on_spark if name.startswith("latency_")]
    expected = {n: v for n, v in local.metrics.items() if not n.startswith("latency_")}
    assert on_spark == pytest.approx(expected, rel=1e-6)
    rows = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=f"{REPORT_DIR}/questions.jsonl", dst_path=str(tmp_path)
    )
    spark_rows = [json.loads(line) for line in Path(rows).read_text().splitlines()]
    assert [r["answer"] for r in spark_rows] == [r["answer"] for r in local.rows]
    assert [r["ranked_document_ids"] for r in spark_rows] == [
        r["ranked_document_ids"] for r in local.rows
    ]
    assert [[s["chunk_id"] for s in r["sources"]] for r in spark_rows] == [
        [s["chunk_id"] for s in r["sources"]] for r in local.rows
    ]
