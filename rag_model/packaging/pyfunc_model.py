"""RagPyfuncModel: the mlflow.pyfunc face of RagPipeline, rebuilt from the model's own files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from rag_model.packaging.mlflow_tracer import MlflowTracer, pyfunc_tracer
from rag_model.packaging.rows import predict_rows
from rag_model.packaging.version_files import (
    ARTIFACT_EMBEDDER,
    ARTIFACT_INDEX,
    ARTIFACT_RERANKER,
    open_pipeline,
)
from rag_model.pipeline import RagPipeline
from rag_model.tracing import use_tracer


class RagPyfuncModel(mlflow.pyfunc.PythonModel):
    """Loads the config from ``model_config`` and the snapshot and embedder from artifacts.

    ``load_context`` verifies every artifact file against its manifest, the config in MLmodel
    against the digest recorded at logging and the MiniLM weights against their pinned sha256
    (``rag_model.packaging.version_files``). The Chroma copy and the encoder are opened lazily
    on the first question (or by ``pipeline.warm_up()``), once per process, so a gunicorn
    master that loads the model never holds a Chroma client.
    """

    pipeline: RagPipeline | None = None
    tracer: MlflowTracer | None = None  # RAG_TRACING=true: each predict call is a trace

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.tracer = pyfunc_tracer()
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
        # a predict call is one trace (rag.answer over its rows) when RAG_TRACING is on; MLflow
        # does not trace a plain PythonModel's predict itself, so there is no second trace
        if self.tracer is None:  # mlflow.tracing.disable() still silences an enabled one
            return predict_rows(self.pipeline, model_input, params)  # the process's own tracer
        with use_tracer(self.tracer):
            return predict_rows(self.pipeline, model_input, params)
