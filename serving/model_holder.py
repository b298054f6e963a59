"""Load the served model once per worker, in the background, and say whether it is ready.

An alias URI is resolved once to a pinned version (``models:/name/7``) so the version the
server reports is exactly the one it loaded, even if the alias moves during the load.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rag_model.pipeline import RagPipeline

logger = logging.getLogger("serving")

Predict = Callable[[Any, dict[str, Any] | None], list[dict[str, Any]]]


@dataclass(frozen=True)
class ServedModel:
    """A loaded model version: the pipeline for /v1/query, the pyfunc predict for /invocations."""

    pipeline: RagPipeline
    predict: Predict
    input_schema: Any  # mlflow.types.Schema, or None
    uri: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    loaded_at: str = field(
        default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    )

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "run_id": self.run_id,
            "uri": self.uri,
            "loaded_at": self.loaded_at,
        }


def load_served_model(uri: str, torch_threads: int = 1) -> ServedModel:
    """Resolve ``uri``, load it with ``mlflow.pyfunc`` (verifying every artifact) and warm it."""
    import mlflow.pyfunc

    from rag_model.packaging.registry import resolve_model_uri

    ref = resolve_model_uri(uri)
    pyfunc = mlflow.pyfunc.load_model(ref.uri if ref else uri)
    pipeline = pyfunc.unwrap_python_model().pipeline
    if pipeline is None:
        raise RuntimeError(f"{uri} is not a rag-model model (no pipeline after load_context)")
    pipeline.warm_up()
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(torch_threads)
    pipeline.answer("warm-up question")  # first-call costs paid here, not by a client
    return ServedModel(
        pipeline=pipeline,
        predict=lambda data, params: pyfunc.predict(data, params=params),
        input_schema=pyfunc.metadata.get_input_schema(),
        uri=uri,
        name=ref.name if ref else None,
        version=ref.version if ref else None,
        alias=ref.alias if ref else None,
        run_id=ref.run_id if ref else pyfunc.metadata.run_id,
    )


class ModelHolder:
    """Holds the served model; loads it on a background thread so /health answers at once."""

    def __init__(self, uri: str, torch_threads: int = 1, model: ServedModel | None = None):
        self.uri = uri
        self.torch_threads = torch_threads
        self.model = model
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> str:
        if self.model is not None:
            return "ready"
        return "failed" if self.error else "loading"

    def start(self) -> None:
        """Begin loading in the background (idempotent)."""
        if self._thread is None and self.model is None:
            self._thread = threading.Thread(target=self._load, name="model-loader", daemon=True)
            self._thread.start()

    def wait(self, timeout: float | None = None) -> str:
        """Block until loading ends (for tests and scripts); return the state."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            self.model = load_served_model(self.uri, self.torch_threads)
        except Exception as exc:  # any failure must leave the worker up and say why
            self.error = f"{type(exc).__name__}: {exc}"
            logger.exception("failed to load %s", self.uri)
            return
        logger.info(
            "loaded %s (version %s) in %.1f s",
            self.uri,
            self.model.version,
            time.perf_counter() - started,
        )
