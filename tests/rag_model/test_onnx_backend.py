"""The onnx encoder backends: same vectors as torch, shipped verified, served without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest

from rag_model.build import build_snapshot
from rag_model.config import RagConfig
from rag_model.embedders import OnnxEmbedder, SentenceTransformerEmbedder
from rag_model.errors import ConfigError, EmbedderError, IntegrityError
from rag_model.minilm import ONNX_EMBEDDER_FILES, bundled_minilm_dir
from rag_model.onnx_export import exported_minilm_dir
from rag_model.packaging.log import log_rag_model, pinned_requirements
from rag_model.packaging.registry import register_version
from rag_model.packaging.version_files import check_embedder_files
from tests.conftest import PROJECT

TEXTS = [
    "Who built the Clifton suspension bridge?",
    "Brunel built the bridge in 1864, long after the design competition.",
    "Oxygen is a chemical element with symbol O and atomic number 8. " * 40,  # > 256 tokens
    "?",
]
ONNX_CONFIG = {"embedding": {"backend": "onnx"}, "generation": {"generator": "extractive"}}


def test_an_onnx_backend_needs_minilm() -> None:
    with pytest.raises(ConfigError, match="backend 'onnx' runs sentence-transformers/all-MiniLM"):
        RagConfig.from_dict({"embedding": {"model": "hash-embedder", "backend": "onnx"}})


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ConfigError, match="embedding.backend: Input should be 'torch', 'onnx'"):
        RagConfig.from_dict({"embedding": {"backend": "tensorrt"}})


def test_the_onnx_embedder_names_its_missing_files(tmp_path: Path) -> None:
    with pytest.raises(EmbedderError, match="no tokenizer.json, model.onnx in"):
        OnnxEmbedder(tmp_path).embed(["hello"])


def test_onnx_is_the_default_backend_and_the_fake_needs_no_export() -> None:
    assert RagConfig().embedding.backend == "onnx"
    assert RagConfig.from_dict({"embedding": {"model": "hash-embedder"}}).embedding.backend == (
        "torch"
    )


def test_the_onnx_requirements_leave_torch_out() -> None:
    default = {line.split("==")[0] for line in pinned_requirements(RagConfig())}
    torch = {"embedding": {"backend": "torch"}}
    with_torch = {line.split("==")[0] for line in pinned_requirements(RagConfig.from_dict(torch))}

    assert {"onnxruntime", "tokenizers"} <= default
    assert not {"torch", "sentence-transformers", "transformers"} & default
    assert {"torch", "sentence-transformers"} <= with_torch


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    return SentenceTransformerEmbedder(bundled_minilm_dir(), threads=1).embed(TEXTS)


@pytest.mark.integration
def test_onnx_fp32_gives_the_torch_vectors(torch_vectors: np.ndarray) -> None:
    folder = exported_minilm_dir(quantize=False)
    assert sorted(p.name for p in folder.iterdir()) == sorted(ONNX_EMBEDDER_FILES)

    vectors = OnnxEmbedder(folder, threads=1).embed(TEXTS)

    assert vectors.shape == torch_vectors.shape and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    cosines = (vectors * torch_vectors).sum(axis=1)
    assert cosines.min() > 0.999, cosines


@pytest.mark.integration
def test_onnx_int8_stays_close_to_torch(torch_vectors: np.ndarray) -> None:
    vectors = OnnxEmbedder(exported_minilm_dir(quantize=True), threads=1).embed(TEXTS)

    # quantized weights move vectors measurably (the retrieval cost is in bench/README.md)
    assert (vectors * torch_vectors).sum(axis=1).min() > 0.85


@pytest.mark.integration
def test_onnx_batches_give_the_single_text_vectors() -> None:
    embedder = OnnxEmbedder(exported_minilm_dir(quantize=False), threads=1)

    together = embedder.embed_batch(TEXTS)  # padded to the longest text
    alone = np.vstack([embedder.embed_batch([text]) for text in TEXTS])

    np.testing.assert_allclose(together, alone, atol=1e-5)


@pytest.fixture(scope="module")
def onnx_model_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An onnx-backend model of a tiny corpus, logged in its own store."""
    from tests.conftest import use_tracking_store

    root = tmp_path_factory.mktemp("onnx-model")
    corpus = root / "corpus.jsonl"
    corpus.write_text(
        "\n".join(
            json.dumps({"id": f"d{i}", "text": text, "metadata": {"title": f"T{i}"}})
            for i, text in enumerate(TEXTS[1:3])
        )
    )
    config = RagConfig.from_dict(ONNX_CONFIG)
    built = build_snapshot(config, corpus, root / "snapshot")
    use_tracking_store(root / "mlflow")
    with mlflow.start_run():
        info = log_rag_model(config, built.snapshot_dir)
    return register_version(info.model_uri, "onnx-rag-model").uri


@pytest.mark.integration
def test_an_onnx_model_ships_the_export_with_its_checksum(
    onnx_model_uri: str, tmp_path: Path
) -> None:
    local = Path(mlflow.artifacts.download_artifacts(onnx_model_uri, dst_path=str(tmp_path)))
    embedder = local / "artifacts" / "embedder"
    manifest = json.loads((embedder / "manifest.json").read_text())

    assert manifest["backend"] == "onnx"
    assert sorted(manifest["files"]) == sorted(ONNX_EMBEDDER_FILES)  # no torch weights
    model = mlflow.pyfunc.load_model(str(local))
    assert model.unwrap_python_model().pipeline.answer("Who built the bridge?").sources


@pytest.mark.integration
def test_loading_refuses_an_altered_onnx_file(onnx_model_uri: str, tmp_path: Path) -> None:
    local = Path(mlflow.artifacts.download_artifacts(onnx_model_uri, dst_path=str(tmp_path)))
    onnx = local / "artifacts" / "embedder" / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0x01
    onnx.write_bytes(bytes(data))

    with pytest.raises(IntegrityError, match="file model.onnx has sha256"):
        mlflow.pyfunc.load_model(str(local))


@pytest.mark.integration
def test_loading_refuses_a_config_that_names_another_backend(
    onnx_model_uri: str, tmp_path: Path
) -> None:
    import yaml

    local = Path(mlflow.artifacts.download_artifacts(onnx_model_uri, dst_path=str(tmp_path)))
    mlmodel = local / "MLmodel"
    spec = yaml.safe_load(mlmodel.read_text())
    assert spec["flavors"]["python_function"]["config"]["embedding"]["backend"] == "onnx"
    spec["flavors"]["python_function"]["config"]["embedding"]["backend"] = "onnx-int8"
    mlmodel.write_text(yaml.safe_dump(spec))

    # the edit is caught as an edit; a config and files that disagree otherwise: below
    with pytest.raises(IntegrityError, match="the config was edited after logging"):
        mlflow.pyfunc.load_model(str(local))
    with pytest.raises(IntegrityError, match="holds the 'onnx' encoder but the config names"):
        check_embedder_files(
            local / "artifacts" / "embedder",
            RagConfig.from_dict(spec["flavors"]["python_function"]["config"]),
        )


@pytest.mark.integration
def test_a_serving_process_with_the_onnx_backend_never_imports_torch(
    onnx_model_uri: str,
) -> None:
    code = (
        "import json, sys\n"
        "from serving.model_holder import load_served_model\n"
        "from serving.settings import Settings\n"
        f"model = load_served_model({onnx_model_uri!r}, Settings())\n"
        "answer = model.pipeline.answer('Who built the bridge?')\n"
        "heavy = sorted({'torch', 'transformers', 'sentence_transformers'} & set(sys.modules))\n"
        "print(json.dumps({'heavy': heavy, 'sources': len(answer.sources)}))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [] and result["sources"] > 0
