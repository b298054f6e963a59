"""RagPyfuncModel: the mlflow.pyfunc face of RagPipeline, rebuilt from the model's own files."""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.models.model import MLMODEL_FILE_NAME, MODEL_CONFIG, Model

from rag_model.chroma_server import open_index
from rag_model.config import RagConfig
from rag_model.errors import IntegrityError, QueryError
from rag_model.manifest import config_digest, read_manifest, verify_manifest
from rag_model.minilm import MINILM_WEIGHTS_FILE, check_minilm_digest
from rag_model.packaging.schema import QUESTION_COLUMN, answer_to_row, parse_filter
from rag_model.pipeline import RagPipeline

ARTIFACT_INDEX = "index"
ARTIFACT_EMBEDDER = "embedder"
# the index manifest of a logged model records the sha256 of its model_config
CONFIG_DIGEST = "model_config_sha256"


class RagPyfuncModel(mlflow.pyfunc.PythonModel):
    """Loads the config from ``model_config`` and the snapshot and embedder from artifacts.

    ``load_context`` verifies every artifact file against its manifest, the config in MLmodel
    against the digest recorded at logging and the MiniLM weights against their pinned sha256.
    The Chroma
    copy and the encoder are opened lazily on the first question (or by
    ``pipeline.warm_up()``), once per process, so a gunicorn master that loads the model never
    holds a Chroma client.
    """

    pipeline: RagPipeline | None = None

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        index_dir = Path(context.artifacts[ARTIFACT_INDEX])
        # the manifest's own digest vouches for the config digest it records: the config is
        # checked before anything reads it (which index, which encoder)
        check_model_config(index_dir, read_manifest(index_dir))
        config = RagConfig.from_dict(context.model_config)
        embedder_dir = context.artifacts.get(ARTIFACT_EMBEDDER)
        if embedder_dir:
            check_embedder_files(Path(embedder_dir), config)
        index = open_index(config.index, index_dir)  # verifies every file of the snapshot
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


def check_model_config(index_dir: Path, manifest: dict[str, Any]) -> None:
    """Refuse a model whose MLmodel file holds another config than the one logged.

    What is checked is the config stored in the file: an override given at load time
    (``load_model(uri, model_config=...)``, e.g. another Chroma server) is MLflow's documented
    way to adjust a version and is applied on top. Versions logged before the index manifest
    recorded the config (format 1.0) are not checked.
    """
    recorded = manifest.get(CONFIG_DIGEST)
    if recorded is None:
        return
    mlmodel = index_dir.parent.parent / MLMODEL_FILE_NAME
    flavor = Model.load(str(mlmodel)).flavors.get(mlflow.pyfunc.FLAVOR_NAME, {})
    actual = config_digest(flavor.get(MODEL_CONFIG) or {})
    if actual != recorded:
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
