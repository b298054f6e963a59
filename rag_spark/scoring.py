"""Batch scoring on Spark: a registered model answers a DataFrame of questions via spark_udf.

The model runs as ``mlflow.pyfunc.spark_udf(..., env_manager="local")``: each Python worker
loads the model once per task from the model's own files and answers its partition's
questions. The UDF is applied with no column arguments, so MLflow passes the columns the
model's signature names (``question``), whatever the DataFrame's column order; a model without
a signature would get positional names and fail.

The result is one struct column in the signature's output shape::

    answer     string
    citations  array<string>                       chunk ids cited by the answer
    sources    array<struct<id, document_id, text, score double, metadata, scores>>

``metadata`` and ``scores`` (dense / lexical / fused) are JSON strings inside each source: the
signature must give every field a fixed type, and metadata differs per corpus.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # evaluation pulls in ragas: only an evaluation should pay for it
    from evaluation.runner import Prediction, Predictor

# the model's output schema (rag_model.packaging.schema.model_signature) as a Spark type;
# tests/rag_spark/test_scoring.py checks it against what MLflow infers from the signature
RESULT_TYPE = (
    "answer string, citations array<string>, "
    "sources array<struct<id: string, document_id: string, text: string, score: double, "
    "metadata: string, scores: string, best_sentence: string>>"
)


def score_questions(
    frame: Any,
    model_uri: str,
    params: Mapping[str, Any] | None = None,
    output_column: str = "prediction",
) -> Any:
    """Answer the ``question`` column of a Spark DataFrame with the model at ``model_uri``.

    Args:
        frame: a ``pyspark.sql.DataFrame`` with a string column ``question`` (other columns
            are kept and passed through, in any order).
        model_uri: any MLflow model URI, e.g. ``models:/rag-model@production``.
        params: inference params of the signature: ``k``, ``filter`` (JSON), ``include_sources``.
        output_column: the name of the struct column added (``RESULT_TYPE``).

    Returns:
        ``frame`` with ``output_column`` added (lazily: nothing runs until an action).

    Raises:
        QueryError: ``frame`` has no ``question`` column.
    """
    import mlflow.pyfunc

    from rag_model.errors import QueryError
    from rag_model.packaging.rows import QUESTION_COLUMN

    if QUESTION_COLUMN not in frame.columns:
        raise QueryError(
            f"the DataFrame needs a '{QUESTION_COLUMN}' column of strings, got "
            f"{frame.columns}; rename the column that holds the questions",
            field=QUESTION_COLUMN,
        )
    udf = mlflow.pyfunc.spark_udf(
        frame.sparkSession,
        model_uri,
        result_type=RESULT_TYPE,
        env_manager="local",
        params=dict(params or {}),
    )
    return frame.withColumn(output_column, udf())


def spark_predictor(spark: Any, model_uri: str) -> Predictor:
    """An evaluation ``Predictor`` that answers on Spark through ``score_questions``.

    Two UDFs run over the questions in one job: one with the model's ``k`` (the answer and
    its sources) and one ``depth`` deep (the ranking nDCG@10 and the recall curve need). No
    latency is reported: the time of a batch says nothing about one question's.
    """

    def predict(questions: Sequence[str], k: int, depth: int) -> list[Prediction]:
        import pandas as pd
        from pyspark.sql import functions as F

        from evaluation.runner import Prediction
        from rag_model.packaging.rows import row_to_answer

        frame = spark.createDataFrame(
            pd.DataFrame({"row": range(len(questions)), "question": list(questions)})
        )
        answered = score_questions(frame, model_uri, {"k": k}, output_column="answer")
        ranked = score_questions(answered, model_uri, {"k": depth}, output_column="deep")
        rows = ranked.select(
            "row", "answer", F.col("deep.sources.document_id").alias("ranking")
        ).collect()
        by_row = {row["row"]: row for row in rows}
        return [
            Prediction(
                row_to_answer(question, by_row[number]["answer"].asDict(recursive=True)),
                list(by_row[number]["ranking"] or []),
            )
            for number, question in enumerate(questions)
        ]

    return predict
