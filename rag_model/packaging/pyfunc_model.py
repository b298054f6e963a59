"""RagPyfuncModel: the mlflow.pyfunc face of RagPipeline, rebuilt from the model's own files."""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from rag_model.config import RagConfig
from rag_model.embedders import MINILM_WEIGHTS_FILE, check_minilm_digest
from rag_model.errors import IntegrityError, QueryError
from rag_model.index import ChromaIndex
from rag_model.manifest import config_digest, verify_manifest
from rag_model.packaging.schema import QUESTION_COLUMN, answer_to_row, parse_filter
from rag_model.pipeline import RagPipeline

ARTIFACT_INDEX = "index"
ARTIFACT_EMBEDDER = "embedder"
# the index manifest of a logged model records the sha256 of its model_config
CONFIG_DIGEST = "model_config_sha256"


class RagPyfuncModel(mlflow.pyfunc.PythonModel):
    """Loads the config from ``model_config`` and the snapshot and embedder from artifacts.

    ``load_context`` verifies every artifact file against its manifest, the config against the
    digest recorded at logging and the MiniLM weights against their pinned sha256. The Chroma
    copy and the encoder are opened lazily on the first question (or by
    ``pipeline.warm_up()``), once per process, so a gunicorn master that loads the model never
    holds a Chroma client.
    """

    pipeline: RagPipeline | None = None

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        index_dir = Path(context.artifacts[ARTIFACT_INDEX])
        index = ChromaIndex.open(index_dir)  # verifies every file of the snapshot
        check_model_config(context.model_config, index.manifest, index_dir)
        config = RagConfig.from_dict(context.model_config)
        embedder_dir = context.artifacts.get(ARTIFACT_EMBEDDER)
        if embedder_dir:
            check_embedder_files(Path(embedder_dir), config)
        self.pipeline = RagPipeline.from_index(config, index, embedder_dir)

    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Answer each row's ``question``; params ``k``, ``filter`` (JSON), ``include_sources``."""
        assert self.pipeline is not None, "load_context was not called"
        return predict_rows(self.pipeline, model_input, params)


def check_model_config(
    model_config: dict[str, Any] | None, manifest: dict[str, Any], index_dir: Path
) -> None:
    """Refuse a config that differs from the one logged (an edited MLmodel file).

    Versions logged before the index manifest recorded the config (format 1.0) are not checked.
    """
    recorded = manifest.get(CONFIG_DIGEST)
    if recorded is None:
        return
    actual = config_digest(model_config or {})
    if actual != recorded:
        mlmodel = index_dir.parent.parent / "MLmodel"
        raise IntegrityError(
            f"{mlmodel}: the model_config has sha256 {actual}, the index manifest says "
            f"{recorded}: the config was edited after logging; log a new version instead"
        )


def check_embedder_files(embedder_dir: Path, config: RagConfig) -> None:
    """Verify the shipped encoder files, their backend and (torch) the pinned MiniLM weights."""
    manifest = verify_manifest(embedder_dir)
    # versions logged before the onnx backends existed carry torch files and no field
    shipped = manifest.get("backend", "torch")
    if shipped != config.embedding.backend:
        raise IntegrityError(
            f"{embedder_dir} holds the {shipped!r} encoder but the config names "
            f"embedding.backend {config.embedding.backend!r}; log the model again"
        )
    if shipped == "torch" and MINILM_WEIGHTS_FILE in manifest["files"]:
        # the manifest was just verified, so its digest is the file's: no second 90 MB hash
        check_minilm_digest(
            embedder_dir / MINILM_WEIGHTS_FILE, manifest["files"][MINILM_WEIGHTS_FILE]
        )


def predict_rows(
    pipeline: RagPipeline, model_input: pd.DataFrame, params: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The pyfunc prediction, shared with the server so both answer the same way."""
    params = params or {}
    if isinstance(model_input, pd.DataFrame):
        if QUESTION_COLUMN not in model_input.columns:
            raise QueryError(
                f"input needs a '{QUESTION_COLUMN}' column, got {list(model_input.columns)}",
                field=QUESTION_COLUMN,
            )
        questions = model_input[QUESTION_COLUMN].tolist()
    else:
        questions = list(model_input)
    k = params.get("k")
    if isinstance(k, numbers.Integral) and not isinstance(k, bool):
        k = int(k)  # MLflow hands schema "long" params over as numpy integers
    where = parse_filter(params.get("filter"))
    include_sources = bool(params.get("include_sources", True))
    return [
        answer_to_row(pipeline.answer(question, k=k, where=where), include_sources)
        for question in questions
    ]
