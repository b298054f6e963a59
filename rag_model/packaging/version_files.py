"""A logged version's folder, read and verified without importing MLflow.

``RagPyfuncModel.load_context`` (MLflow's loader) and a gunicorn worker that opens a version
prepared once per host (``serving.prepare``) share these steps, so both check the same things:
the config in the ``MLmodel`` file against the digest recorded at logging, the encoder files and
(torch) the pinned MiniLM weights, every file of the index snapshot. The ``MLmodel`` file is
plain YAML: reading it needs PyYAML, not MLflow's ~3 s of imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from rag_model.chroma_server import open_index
from rag_model.config import RagConfig
from rag_model.errors import IntegrityError, ModelError
from rag_model.index import ChromaIndex
from rag_model.manifest import config_digest, read_manifest, verify_manifest
from rag_model.minilm import MINILM_WEIGHTS_FILE, check_minilm_digest
from rag_model.pipeline import RagPipeline

ARTIFACT_INDEX = "index"
ARTIFACT_EMBEDDER = "embedder"
ARTIFACT_RERANKER = "reranker"  # the cross-encoder of retrieval.rerank (ONNX + tokenizer)
# the index manifest of a logged model records the sha256 of its model_config
CONFIG_DIGEST = "model_config_sha256"
MLMODEL_FILE = "MLmodel"  # mlflow.models.model.MLMODEL_FILE_NAME
PYFUNC_FLAVOR = "python_function"


def pyfunc_flavor(model_dir: Path) -> dict[str, Any]:
    """The ``python_function`` section of ``model_dir/MLmodel``.

    Raises:
        ModelError: no readable MLmodel file, or no python_function flavor in it.
    """
    path = model_dir / MLMODEL_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None
    flavor = (data or {}).get("flavors", {}).get(PYFUNC_FLAVOR) if isinstance(data, dict) else None
    if not isinstance(flavor, dict):
        raise ModelError(f"{path} has no {PYFUNC_FLAVOR} flavor: not a rag-model version")
    return flavor


def check_model_config(index_dir: Path, manifest: Mapping[str, Any]) -> None:
    """Refuse a model whose MLmodel file holds another config than the one logged.

    What is checked is the config stored in the file: an override given at load time
    (``load_model(uri, model_config=...)``, e.g. another Chroma server) is MLflow's documented
    way to adjust a version and is applied on top. Versions logged before the index manifest
    recorded the config (format 1.0) are not checked.
    """
    recorded = manifest.get(CONFIG_DIGEST)
    if recorded is None:
        return
    mlmodel = index_dir.parent.parent / MLMODEL_FILE
    actual = config_digest(pyfunc_flavor(mlmodel.parent).get("config") or {})
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


def check_reranker_files(reranker_dir: Path | None, config: RagConfig, verify: bool) -> None:
    """Refuse a version whose config re-ranks without the cross-encoder files, or damaged ones."""
    if config.retrieval.rerank is None:
        return
    if reranker_dir is None or not reranker_dir.is_dir():
        raise ModelError(
            "the config sets retrieval.rerank but the version carries no cross-encoder files "
            f"(artifact {ARTIFACT_RERANKER!r}); log the model again with retrieval.rerank.path "
            "naming the cross-encoder folder"
        )
    if verify:
        verify_manifest(reranker_dir)
    else:
        read_manifest(reranker_dir)


def checked_config(
    index_dir: Path,
    embedder_dir: Path | None,
    model_config: Mapping[str, Any] | None,
    verify: bool = True,
    reranker_dir: Path | None = None,
) -> RagConfig:
    """The version's config, after the checks that need no Chroma client.

    The config in MLmodel against the digest the index manifest records, then (``verify``)
    the encoder files and the pinned MiniLM weights, and the cross-encoder's files.
    """
    # the manifest's own digest vouches for the config digest it records: the config is
    # checked before anything reads it (which index, which encoder)
    check_model_config(index_dir, read_manifest(index_dir))
    config = RagConfig.from_dict(model_config)
    if embedder_dir is not None and verify:
        check_embedder_files(embedder_dir, config)
    check_reranker_files(reranker_dir, config, verify)
    return config


def open_pipeline(
    index_dir: Path,
    embedder_dir: Path | None,
    model_config: Mapping[str, Any] | None,
    verify: bool = True,
    reranker_dir: Path | None = None,
) -> RagPipeline:
    """The version's pipeline from its artifact folders and (possibly overridden) config.

    ``verify=False`` skips hashing files that this host verified moments ago
    (``serving.prepare``); the manifests' own digests are still checked.

    Raises:
        IntegrityError, EmbedderError, IndexNotFoundError: a file is missing or altered.
    """
    config = checked_config(index_dir, embedder_dir, model_config, verify, reranker_dir)
    index = open_index(config.index, index_dir, verify=verify)
    return RagPipeline.from_index(config, index, embedder_dir, reranker_dir=reranker_dir)


def artifact_dirs(model_dir: Path) -> tuple[Path, Path | None, dict[str, Any] | None]:
    """(index folder, encoder folder or None, model_config) of a downloaded version folder.

    Raises:
        ModelError: the MLmodel file names no index artifact.
    """
    flavor = pyfunc_flavor(model_dir)
    artifacts = flavor.get("artifacts") or {}
    if ARTIFACT_INDEX not in artifacts:
        raise ModelError(f"{model_dir / MLMODEL_FILE} names no index artifact: not a rag-model")
    embedder = artifacts.get(ARTIFACT_EMBEDDER)
    return (
        model_dir / artifacts[ARTIFACT_INDEX]["path"],
        model_dir / embedder["path"] if embedder else None,
        flavor.get("config"),
    )


def reranker_dir_of(model_dir: Path) -> Path | None:
    """The version's cross-encoder folder, or None when it carries none."""
    reranker = (pyfunc_flavor(model_dir).get("artifacts") or {}).get(ARTIFACT_RERANKER)
    return model_dir / reranker["path"] if reranker else None


def verify_model_dir(model_dir: Path) -> None:
    """Every check ``open_pipeline`` makes, without opening anything (once per host).

    Raises:
        ModelError, IntegrityError, EmbedderError, IndexNotFoundError: what is wrong, named.
    """
    index_dir, embedder_dir, model_config = artifact_dirs(model_dir)
    config = checked_config(
        index_dir, embedder_dir, model_config, reranker_dir=reranker_dir_of(model_dir)
    )
    if config.index.location == "bundled":  # a server-mode index is checked when opened
        ChromaIndex.open(index_dir)


def open_model_dir(model_dir: Path, verify: bool = True) -> RagPipeline:
    """``open_pipeline`` for a downloaded version folder (the one holding ``MLmodel``)."""
    index_dir, embedder_dir, model_config = artifact_dirs(model_dir)
    reranker_dir = reranker_dir_of(model_dir)
    return open_pipeline(index_dir, embedder_dir, model_config, verify, reranker_dir)
