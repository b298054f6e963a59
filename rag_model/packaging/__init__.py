"""The MLflow adapter: the only part of rag-model that imports mlflow.

``log_rag_model`` packages a config and a Chroma snapshot as an ``mlflow.pyfunc`` model (models
from code, no pickles); ``registry`` moves aliases. Import the submodules directly.
"""
