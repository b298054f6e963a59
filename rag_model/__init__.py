"""rag-model: a RAG pipeline packaged, evaluated, promoted and served as an MLflow model.

This package is the pure core: it imports neither mlflow nor flask, and importing it leaves the
process environment alone (tests check both). Programs set the offline switches themselves,
first thing: ``rag_model.offline.apply_offline_defaults()``.
"""

from rag_model.config import RagConfig
from rag_model.pipeline import Answer, RagPipeline
from rag_model.version import __version__

__all__ = ["Answer", "RagConfig", "RagPipeline", "__version__"]
