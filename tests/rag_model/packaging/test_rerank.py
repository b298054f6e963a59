"""The cross-encoder re-ranker: ONNX export, ordering, shipping inside a version, refusals.

No trained cross-encoder is reachable offline, so the tests make a tiny random-weight BERT
sequence classifier with a locally built tokenizer (``bench.rerank_latency``): the machinery
(export, onnxruntime scoring, ordering, artifacts, verification) is what is tested.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from bench.rerank_latency import make_tiny_cross_encoder
from rag_model.build import build_snapshot
from rag_model.config import RagConfig
from rag_model.documents import RetrievedChunk
from rag_model.errors import ConfigError, IntegrityError, ModelError
from rag_model.manifest import MANIFEST_NAME, read_manifest, sha256_file
from rag_model.packaging.log import log_rag_model
from rag_model.pipeline import RagPipeline
from rag_model.rerank import (
    RERANK_FILES,
    CrossEncoderReranker,
    make_reranker,
    prepare_reranker_files,
)
from tests.conftest import FAKE_CONFIG, SAMPLE_CORPUS, use_tracking_store

pytestmark = pytest.mark.integration

PASSAGES = [
    "The bridge was built over the river by the king.",
    "Oxygen and iron make steel rust in water and air.",
    "Norman castles spread across England after the war.",
    "Patients in the study had a new gene effect.",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CrossEncoder-style folder (random weights, local tokenizer)."""
    return make_tiny_cross_encoder(tmp_path_factory.mktemp("cross-encoder") / "tiny")


@pytest.fixture(scope="module")
def exported(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_reranker_files(tiny, tmp_path_factory.mktemp("onnx") / "reranker")


def torch_scores(folder: Path, question: str, passages: list[str]) -> np.ndarray:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    batch = tokenizer([question] * len(passages), passages, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits[:, 0].numpy()


def test_the_onnx_export_scores_like_the_torch_model_and_orders_by_its_scores(
    tiny: Path, exported: Path
) -> None:
    assert sorted(p.name for p in exported.iterdir()) == sorted(RERANK_FILES)
    question = "who built the bridge over the river"
    reranker = CrossEncoderReranker(exported, batch_size=3, threads=1)  # two batches

    scores = reranker.scores(question, PASSAGES)
    chunks = [RetrievedChunk(str(i), str(i), text, 1.0 - i / 10) for i, text in enumerate(PASSAGES)]
    ranked = reranker.rerank(question, chunks)

    np.testing.assert_allclose(scores, torch_scores(tiny, question, PASSAGES), atol=1e-4)
    assert [c.id for c in ranked] == [str(i) for i in np.argsort(-scores, kind="stable")]
    assert [c.score for c in ranked] == pytest.approx(sorted(scores, reverse=True))
    assert all(c.scores["rerank"] == c.score for c in ranked)


def test_an_onnx_export_is_copied_as_it_is(exported: Path, tmp_path: Path) -> None:
    copy = prepare_reranker_files(exported, tmp_path / "copy")
    for name in RERANK_FILES:
        assert sha256_file(copy / name) == sha256_file(exported / name)


def test_a_missing_or_unusable_folder_is_refused_with_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"rerank.path .*missing is not a folder; give a"):
        prepare_reranker_files(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="holds neither model.onnx \\+ tokenizer.json nor a"):
        prepare_reranker_files(tmp_path / "empty", tmp_path / "out")
    config = RagConfig.from_dict({"retrieval": {"rerank": {"path": str(tmp_path / "empty")}}})
    with pytest.raises(ModelError, match="no cross-encoder export .* is exported when the model"):
        make_reranker(config)
    with pytest.raises(ConfigError, match=r"retrieval.rerank.top_n: .*greater than 0"):
        RagConfig.from_dict({"retrieval": {"rerank": {"path": "x", "top_n": 0}}})
    with pytest.raises(ConfigError, match=r"retrieval.rerank.path: Field required"):
        RagConfig.from_dict({"retrieval": {"rerank": {"top_n": 5}}})


def test_a_damaged_onnx_file_is_refused_at_load(exported: Path, tmp_path: Path) -> None:
    broken = Path(shutil.copytree(exported, tmp_path / "broken"))
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(ModelError, match="cannot load the cross-encoder .* damaged"):
        CrossEncoderReranker(broken).warm_up()


@pytest.fixture(scope="module")
def reranked_model(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake-embedder version that re-ranks with the tiny cross-encoder, as a local folder."""
    root = tmp_path_factory.mktemp("reranked")
    config = RagConfig.from_dict(
        {**FAKE_CONFIG, "retrieval": {"rerank": {"path": str(tiny), "top_n": 6}}}
    )
    built = build_snapshot(config, SAMPLE_CORPUS, root / "snapshot")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", "")
        patch.setenv("MLFLOW_REGISTRY_URI", "")
        use_tracking_store(root / "mlflow")
        with mlflow.start_run():
            uri = log_rag_model(config, built.snapshot_dir).model_uri
        local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(root / "model")))
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    return local


def test_the_cross_encoder_travels_in_the_version_and_reranks_after_loading(
    reranked_model: Path,
) -> None:
    folder = reranked_model / "artifacts" / "reranker"
    manifest = read_manifest(folder)
    assert set(manifest["files"]) == set(RERANK_FILES)
    for name in RERANK_FILES:
        assert manifest["files"][name] == sha256_file(folder / name)

    model = mlflow.pyfunc.load_model(str(reranked_model))
    [row] = model.predict(pd.DataFrame({"question": ["When did the Normans conquer England?"]}))

    sources = row["sources"]
    scores = [json.loads(s["scores"])["rerank"] for s in sources]
    assert scores == sorted(scores, reverse=True)
    question = "When did the Normans conquer England?"
    expected = CrossEncoderReranker(folder).scores(question, [s["text"] for s in sources])
    np.testing.assert_allclose(scores, expected, atol=1e-5)


def test_a_damaged_cross_encoder_in_a_version_is_refused_naming_the_file(
    reranked_model: Path, tmp_path: Path
) -> None:
    model = Path(shutil.copytree(reranked_model, tmp_path / "model"))
    target = model / "artifacts" / "reranker" / "model.onnx"
    target.write_bytes(target.read_bytes()[:-10])

    with pytest.raises(IntegrityError, match=r"reranker.*model\.onnx"):
        mlflow.pyfunc.load_model(str(model))


def test_a_version_without_the_cross_encoder_files_is_refused(
    reranked_model: Path, tmp_path: Path
) -> None:
    model = Path(shutil.copytree(reranked_model, tmp_path / "model"))
    (model / "artifacts" / "reranker" / MANIFEST_NAME).unlink()

    with pytest.raises(IntegrityError, match="manifest"):
        mlflow.pyfunc.load_model(str(model))


def test_a_pipeline_refuses_rerank_without_a_loaded_cross_encoder(tmp_path: Path) -> None:
    config = RagConfig.from_dict(FAKE_CONFIG)
    built = build_snapshot(config, SAMPLE_CORPUS, tmp_path / "s")
    reranking = config.with_overrides({"retrieval.rerank": {"path": str(tmp_path / "none")}})
    pipeline = RagPipeline.from_snapshot(config, built.snapshot_dir)
    with pytest.raises(ConfigError, match="retrieval.rerank is set but no cross-encoder"):
        RagPipeline(reranking, pipeline.index, pipeline.embedder, pipeline.generator)
