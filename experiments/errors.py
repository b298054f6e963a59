"""Turn expected errors into one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from rag_model.errors import RagError


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Re-raise rag-model and MLflow errors as ``click.ClickException`` (exit code 1)."""
    try:
        yield
    except RagError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        from mlflow.exceptions import MlflowException

        if isinstance(exc, MlflowException):
            raise click.ClickException(f"MLflow: {exc.message}") from None
        raise
