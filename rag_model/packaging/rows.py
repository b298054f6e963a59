"""A version's rows: questions in, answers out in the signature's shape, without MLflow.

``predict_rows`` is the pyfunc prediction; the server's ``/invocations`` calls it directly, so
both answer alike, and a worker serving a version prepared once per host never imports MLflow
(or pandas: a DataFrame is recognised by its columns, a plain list of questions works too).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rag_model.documents import RetrievedChunk
from rag_model.errors import QueryError
from rag_model.pipeline import Answer, RagPipeline

QUESTION_COLUMN = "question"


def predict_rows(
    pipeline: RagPipeline, model_input: Any, params: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Answer each row's ``question`` (a DataFrame, or a sequence of questions).

    The rows are answered as one batch (one encoder call, one Chroma query); ``k`` and
    ``filter`` (a mapping or JSON text) resolve as every query does (``rag_model.query``).

    Raises:
        QueryError: no ``question`` column, or a bad question, k or filter (named).
    """
    params = params or {}
    columns = getattr(model_input, "columns", None)
    if columns is not None:
        if QUESTION_COLUMN not in columns:
            raise QueryError(
                f"input needs a '{QUESTION_COLUMN}' column, got {list(columns)}",
                field=QUESTION_COLUMN,
            )
        questions: Sequence[Any] = model_input[QUESTION_COLUMN].tolist()
    else:
        questions = list(model_input)
    include_sources = params.get("include_sources")
    include_sources = True if include_sources is None else bool(include_sources)
    answers = pipeline.answer_many(questions, params.get("k"), params.get("filter"))
    return [answer_to_row(answer, include_sources) for answer in answers]


def answer_to_row(answer: Answer, include_sources: bool) -> dict[str, Any]:
    """One output row in the signature's shape."""
    row: dict[str, Any] = {"answer": answer.answer, "citations": list(answer.citations)}
    if include_sources:
        # the signature's fixed schema cannot describe free-form maps: they travel as JSON
        row["sources"] = [
            {
                **source,
                # always present (null unless sentence re-scoring found one): Spark's struct
                # type needs every field of the signature in every row
                "best_sentence": source.get("best_sentence"),
                "metadata": json.dumps(source["metadata"], sort_keys=True),
                "scores": json.dumps(source["scores"], sort_keys=True),
            }
            for source in (s.to_dict() for s in answer.sources)
        ]
    return row


def row_to_answer(question: str, row: Mapping[str, Any]) -> Answer:
    """The ``Answer`` an output row describes: ``answer_to_row`` read back (e.g. from Spark).

    Timings and confidence are not part of the signature, so they come back empty.
    """
    sources = [
        RetrievedChunk(
            id=source["id"],
            document_id=source["document_id"],
            text=source["text"],
            score=float(source["score"]),
            metadata=json.loads(source["metadata"] or "{}"),
            scores=json.loads(source.get("scores") or "{}"),
            best_sentence=source.get("best_sentence"),
        )
        for source in row.get("sources") or []
    ]
    return Answer(
        question=question.strip(),
        answer=row["answer"],
        sources=sources,
        citations=list(row.get("citations") or []),
    )
