"""rag-model: a RAG pipeline packaged, evaluated, promoted and served as an MLflow model.

This package is the pure core: it imports neither mlflow nor flask (a test checks it).
"""

from rag_model.offline import apply_offline_defaults

apply_offline_defaults()  # before any library that reads these switches is imported

from rag_model.config import RagConfig  # noqa: E402
from rag_model.pipeline import Answer, RagPipeline  # noqa: E402
from rag_model.version import __version__  # noqa: E402

__all__ = ["Answer", "RagConfig", "RagPipeline", "__version__"]
