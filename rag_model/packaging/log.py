"""log_rag_model: package a config + Chroma snapshot (+ embedder files) as an MLflow model."""

from __future__ import annotations

import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
from mlflow.models.model import ModelInfo

import rag_model
from rag_model.config import HASH_MODEL_ID, RagConfig
from rag_model.embedders import copy_embedder_files
from rag_model.index import ChromaIndex
from rag_model.manifest import FORMAT_VERSION, amend_manifest, config_digest, write_manifest
from rag_model.packaging.schema import INPUT_EXAMPLE, model_signature
from rag_model.packaging.version_files import (
    ARTIFACT_EMBEDDER,
    ARTIFACT_INDEX,
    ARTIFACT_RERANKER,
    CONFIG_DIGEST,
)
from rag_model.publish import stage_server_snapshot
from rag_model.rerank import prepare_reranker_files

MODEL_CODE = Path(__file__).with_name("model_code.py")
# what a serving process imports; pinned to the versions this model was built and tested with
RUNTIME_DISTRIBUTIONS = (
    "mlflow",
    "chromadb",
    "onnxruntime",
    "tokenizers",
    "sentence-transformers",
    "torch",
    "transformers",
    "pydantic",
    "numpy",
    "pandas",
    "langchain-text-splitters",
    "bm25s",
    "PyStemmer",
    "openai",
    "PyYAML",
)


# what only the torch backend needs at serving time; an onnx model is served without them
TORCH_DISTRIBUTIONS = ("sentence-transformers", "torch", "transformers")


def pinned_requirements(config: RagConfig | None = None) -> list[str]:
    """``name==version`` for each runtime dependency of ``config``, read from this environment."""
    # the onnx backends and the hash fake run without torch: such a model need not pin it, and
    # an install without the torch extra (rag-model's core) can log it
    torchless = config and (
        config.embedding.backend != "torch" or config.embedding.model == HASH_MODEL_ID
    )
    skip = TORCH_DISTRIBUTIONS if torchless else ()
    return [
        f"{name}=={_installed_version(name)}" for name in RUNTIME_DISTRIBUTIONS if name not in skip
    ]


def _installed_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        if name != "mlflow":
            raise
        # the core installs mlflow-skinny (same version, same client API); the model still
        # pins the full mlflow so that `mlflow models serve` can run it
        return metadata.version("mlflow-skinny")


def log_rag_model(
    config: RagConfig,
    snapshot_dir: str | Path,
    *,
    name: str = "rag_model",
    registered_model_name: str | None = None,
) -> ModelInfo:
    """Log the pipeline as an ``mlflow.pyfunc`` model in the active run.

    The model carries its config (``model_config``), the verified Chroma snapshot, the
    embedder's files (so serving needs no hub), the cross-encoder's ONNX files when
    ``retrieval.rerank`` names one, and the rag_model code itself, so any machine
    that can read the registry can serve it with no other state and no network.

    Args:
        config: the pipeline config; stored in the model and read back at load time.
        snapshot_dir: a snapshot written by ``build_index`` (verified before logging).
        name: the model's name within the run.
        registered_model_name: also register a new version under this name.

    Returns:
        MLflow's ``ModelInfo`` (``model_uri``, ``registered_model_version`` ...).

    With ``index.location: server`` the model ships no Chroma files: the snapshot must have
    been published to the collection the config names (``rag_model.publish``), which is
    checked in full against it here; the model carries the manifest, its fingerprint and the
    files retrieval reads locally (docs/chroma-server.md).

    Raises:
        IntegrityError: the snapshot does not match its manifest, or (server mode) the server's
            collection does not hold it.
        IndexNotFoundError, IndexServerError: (server mode) no such collection, or no server.
    """
    with tempfile.TemporaryDirectory(prefix="rag-model-log-") as staging:
        staging_dir = Path(staging)
        # staged under a fixed name so every version's layout is artifacts/index/...
        index_dir = staging_dir / ARTIFACT_INDEX
        if config.index.location == "server":
            # the manifest (and BM25, sentence vectors) only; the collection is on the server,
            # checked against the snapshot before anything is logged
            manifest = stage_server_snapshot(config, snapshot_dir, index_dir)
        else:
            manifest = ChromaIndex.open(snapshot_dir).manifest  # refuses a corrupted snapshot
            shutil.copytree(snapshot_dir, index_dir)
        # the config travels in MLmodel, outside any manifest: its digest goes in the index's
        amend_manifest(index_dir, **{CONFIG_DIGEST: config_digest(config.to_dict())})
        artifacts = {ARTIFACT_INDEX: str(index_dir)}
        embedder_dir = copy_embedder_files(config.embedding, staging_dir / ARTIFACT_EMBEDDER)
        if embedder_dir is not None:
            write_manifest(
                embedder_dir, embedder=config.embedding.model, backend=config.embedding.backend
            )
            artifacts[ARTIFACT_EMBEDDER] = str(embedder_dir)
        rerank = config.retrieval.rerank
        if rerank is not None:
            # the cross-encoder travels inside the version like the encoder: ONNX (exported
            # here from a CrossEncoder folder), sha256 per file, verified at load
            reranker_dir = prepare_reranker_files(rerank.path, staging_dir / ARTIFACT_RERANKER)
            write_manifest(reranker_dir, reranker_source=Path(rerank.path).name)
            artifacts[ARTIFACT_RERANKER] = str(reranker_dir)
        code_dir = staging_dir / "code" / "rag_model"
        shutil.copytree(
            Path(rag_model.__file__).parent, code_dir, ignore=shutil.ignore_patterns("__pycache__")
        )
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(MODEL_CODE),
            artifacts=artifacts,
            model_config=config.to_dict(),
            code_paths=[str(code_dir)],
            signature=model_signature(),
            input_example=INPUT_EXAMPLE,
            pip_requirements=pinned_requirements(config),
            metadata=_model_metadata(manifest),
            registered_model_name=registered_model_name,
        )


def _model_metadata(manifest: dict[str, Any]) -> dict[str, Any]:
    return {
        "rag_model_version": rag_model.__version__,
        "artifact_format": FORMAT_VERSION,
        "chunk_count": manifest["chunk_count"],
        "embedding_dimension": manifest["embedding_dimension"],
        "embedder": manifest["embedder"],
        "corpus_fingerprint": manifest["corpus_fingerprint"],
        "index_location": manifest.get("location", "bundled"),
    }
