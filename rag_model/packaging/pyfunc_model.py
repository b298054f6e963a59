"""RagPyfuncModel: the mlflow.pyfunc face of RagPipeline, rebuilt from the model's own files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from rag_model.packaging.rows import predict_rows
from rag_model.packaging.version_files import (
    ARTIFACT_EMBEDDER,
    ARTIFACT_INDEX,
    ARTIFACT_RERANKER,
    open_pipeline,
)
from rag_model.pipeline import RagPipeline


class RagPyfuncModel(mlflow.pyfunc.PythonModel):
    """Loads the config from ``model_config`` and the snapshot and embedder from artifacts.

    ``load_context`` verifies every artifact file against its manifest, the config in MLmodel
    against the digest recorded at logging and the MiniLM weights against their pinned sha256
    (``rag_model.packaging.version_files``). The Chroma copy and the encoder are opened lazily
    on the first question (or by ``pipeline.warm_up()``), once per process, so a gunicorn
    master that loads the model never holds a Chroma client.
    """

    pipeline: RagPipeline | None = None

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        embedder_dir = context.artifacts.get(ARTIFACT_EMBEDDER)
        reranker_dir = context.artifacts.get(ARTIFACT_RERANKER)
        self.pipeline = open_pipeline(
            Path(context.artifacts[ARTIFACT_INDEX]),
            Path(embedder_dir) if embedder_dir else None,
            context.model_config,
            reranker_dir=Path(reranker_dir) if reranker_dir else None,
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
