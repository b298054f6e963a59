"""Load a rag-model from a model URI or a local model folder, as a ready RagPipeline."""

from __future__ import annotations

import mlflow.pyfunc

from rag_model.errors import ModelError
from rag_model.pipeline import RagPipeline


def load_pipeline(model_uri: str) -> RagPipeline:
    """``models:/name@alias``, ``models:/name/3``, ``runs:/...`` or a local folder -> pipeline.

    Every artifact is verified against its manifest on the way (see ``RagPyfuncModel``).

    Raises:
        ModelError: the model at ``model_uri`` is not a rag-model.
    """
    model = mlflow.pyfunc.load_model(model_uri)
    pipeline = getattr(model.unwrap_python_model(), "pipeline", None)
    if not isinstance(pipeline, RagPipeline):
        raise ModelError(
            f"{model_uri} is not a rag-model model (its python_model has no RagPipeline); "
            "log it with rag_model.packaging.log_rag_model"
        )
    return pipeline
