"""Thin ``mlflow run`` entry points and the ``rag-model`` command line."""
