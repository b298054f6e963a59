"""The model signature (inputs, outputs, inference params), input example, rows <-> answers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, Object, ParamSchema, ParamSpec, Property, Schema

from rag_model.documents import RetrievedChunk
from rag_model.pipeline import Answer

QUESTION_COLUMN = "question"
INPUT_EXAMPLE = {QUESTION_COLUMN: ["What is the Chroma snapshot of a model version?"]}

# metadata differs per corpus, so it travels as a JSON string: a fixed schema must describe it
SOURCE_TYPE = Object(
    [
        Property("id", "string"),
        Property("document_id", "string"),
        Property("text", "string"),
        Property("score", "double"),
        Property("metadata", "string"),
        Property("scores", "string", required=False),  # JSON: dense / lexical / fused
    ]
)


def model_signature() -> ModelSignature:
    """Input ``question``; output answer, citations, sources; params k, filter, include_sources.

    The same for every version: k's default is the version's own ``retrieval.k``.
    """
    return ModelSignature(
        inputs=Schema([ColSpec("string", QUESTION_COLUMN)]),
        outputs=Schema(
            [
                ColSpec("string", "answer"),
                ColSpec(Array("string"), "citations"),
                ColSpec(Array(SOURCE_TYPE), "sources", required=False),
            ]
        ),
        params=ParamSchema(
            [
                # None: the version's retrieval.k, a load-time model_config override included
                # (a default frozen here would disagree with such an override)
                ParamSpec("k", "long", None),
                ParamSpec("filter", "string", ""),
                ParamSpec("include_sources", "boolean", True),
            ]
        ),
    )


def answer_to_row(answer: Answer, include_sources: bool) -> dict[str, Any]:
    """One output row in the signature's shape."""
    row: dict[str, Any] = {"answer": answer.answer, "citations": list(answer.citations)}
    if include_sources:
        # the signature's fixed schema cannot describe free-form maps: they travel as JSON
        row["sources"] = [
            {
                **source,
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
        )
        for source in row.get("sources") or []
    ]
    return Answer(
        question=question.strip(),
        answer=row["answer"],
        sources=sources,
        citations=list(row.get("citations") or []),
    )
