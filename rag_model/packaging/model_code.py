"""The models-from-code entry file MLflow stores with each version and runs at load time."""

import mlflow

from rag_model.packaging.pyfunc_model import RagPyfuncModel

mlflow.models.set_model(RagPyfuncModel())
