"""RagPyfuncModel: the mlflow.pyfunc face of RagPipeline, rebuilt from the model's own files."""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from rag_model.config import RagConfig
from rag_model.errors import IntegrityError, QueryError
from rag_model.manifest import verify_manifest
from rag_model.packaging.schema import QUESTION_COLUMN, answer_to_row, parse_filter
from rag_model.pipeline import RagPipeline

ARTIFACT_INDEX = "index"
ARTIFACT_EMBEDDER = "embedder"


class RagPyfuncModel(mlflow.pyfunc.PythonModel):
    """Loads the config from ``model_config`` and the snapshot and embedder from artifacts.

    ``load_context`` verifies every artifact file against its manifest; the Chroma copy and the
    encoder are opened lazily on the first question (or by ``pipeline.warm_up()``), once per
    process, so a gunicorn master that loads the model never holds a Chroma client.
    """

    pipeline: RagPipeline | None = None

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        config = RagConfig.from_dict(context.model_config)
        embedder_dir = context.artifacts.get(ARTIFACT_EMBEDDER)
        if embedder_dir:
            manifest = verify_manifest(Path(embedder_dir))  # the index: by from_snapshot
            # versions logged before the onnx backends existed carry torch files and no field
            shipped = manifest.get("backend", "torch")
            if shipped != config.embedding.backend:
                raise IntegrityError(
                    f"{embedder_dir} holds the {shipped!r} encoder but the config names "
                    f"embedding.backend {config.embedding.backend!r}; log the model again"
                )
        self.pipeline = RagPipeline.from_snapshot(
            config, context.artifacts[ARTIFACT_INDEX], embedder_dir
        )

    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Answer each row's ``question``; params ``k``, ``filter`` (JSON), ``include_sources``."""
        assert self.pipeline is not None, "load_context was not called"
        return predict_rows(self.pipeline, model_input, params)


def predict_rows(
    pipeline: RagPipeline, model_input: pd.DataFrame, params: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The pyfunc prediction, shared with the server so both answer the same way."""
    params = params or {}
    if isinstance(model_input, pd.DataFrame):
        if QUESTION_COLUMN not in model_input.columns:
            raise QueryError(
                f"input needs a '{QUESTION_COLUMN}' column, got {list(model_input.columns)}",
                field=QUESTION_COLUMN,
            )
        questions = model_input[QUESTION_COLUMN].tolist()
    else:
        questions = list(model_input)
    k = params.get("k")
    if isinstance(k, numbers.Integral) and not isinstance(k, bool):
        k = int(k)  # MLflow hands schema "long" params over as numpy integers
    where = parse_filter(params.get("filter"))
    include_sources = bool(params.get("include_sources", True))
    return [
        answer_to_row(pipeline.answer(question, k=k, where=where), include_sources)
        for question in questions
    ]
