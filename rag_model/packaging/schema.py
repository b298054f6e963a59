"""The model signature (inputs, outputs, inference params) and input example."""

from __future__ import annotations

from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, Object, ParamSchema, ParamSpec, Property, Schema

from rag_model.packaging.rows import QUESTION_COLUMN

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
        # the chunk's sentence closest to the question, when sentence re-scoring ranked it
        Property("best_sentence", "string", required=False),
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
