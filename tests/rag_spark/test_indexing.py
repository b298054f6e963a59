"""Index builds on Spark give the local build's chunks, vectors and manifest (real MiniLM)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from experiments.cli import cli
from rag_model.build import BuildResult, build_snapshot
from rag_model.config import RagConfig
from rag_model.index import CHROMA_DIR
from rag_model.manifest import verify_manifest
from rag_model.packaging.log import log_rag_model
from rag_model.sentences import SENTENCES_DIR, VECTORS_FILE
from tests.conftest import SAMPLE_CORPUS, chroma_contents

pytestmark = pytest.mark.integration

DOCUMENTS = 24  # of the sample's 175: enough for several chunks per topic, minutes less MiniLM
QUESTIONS = ["Who were the Normans?", "How does a steam engine work?", "What is oxygen?"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lines = SAMPLE_CORPUS.read_text().splitlines()
    # every third document, so the subset spans the sample's topics
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    path.write_text("\n".join(lines[::3][:DOCUMENTS]) + "\n")
    return path


@pytest.fixture(scope="module")
def local(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    return build_snapshot(RagConfig(), corpus, tmp_path_factory.mktemp("local") / "snapshot")


@pytest.fixture(scope="module")
def on_spark(spark: Any, corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("spark") / "snapshot"
    result = CliRunner().invoke(
        cli,
        ["build", "--engine", "spark", "--data-path", str(corpus), "--out", str(out)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{DOCUMENTS} documents, ")  # progress goes to stderr
    return out


def test_spark_build_gives_the_same_chunks_vectors_and_manifest(
    local: BuildResult, on_spark: Path, tmp_path: Path
) -> None:
    manifest = verify_manifest(on_spark)
    for field in ("chunk_count", "corpus_fingerprint", "embedding_dimension", "embedder", "space"):
        assert manifest[field] == local.manifest[field], field
    # Chroma's files hold a random collection id; everything else is byte for byte the same,
    # except the sentence vectors, which float noise from other batch paddings may change
    expected = {n: d for n, d in local.manifest["files"].items() if not n.startswith(CHROMA_DIR)}
    files = {n: d for n, d in manifest["files"].items() if not n.startswith(CHROMA_DIR)}
    vectors_file = f"{SENTENCES_DIR}/{VECTORS_FILE}"
    assert files.keys() == expected.keys()
    assert {n: d for n, d in files.items() if n != vectors_file} == {
        n: d for n, d in expected.items() if n != vectors_file
    }
    spark_chunks = chroma_contents(on_spark, tmp_path / "spark")
    local_chunks = chroma_contents(local.snapshot_dir, tmp_path / "local")
    assert len(spark_chunks["ids"]) == local.chunk_count > DOCUMENTS
    for field in ("ids", "documents", "metadatas"):
        assert spark_chunks[field] == local_chunks[field], field
    np.testing.assert_allclose(spark_chunks["embeddings"], local_chunks["embeddings"], atol=1e-5)
    np.testing.assert_allclose(
        np.load(on_spark / vectors_file), np.load(local.snapshot_dir / vectors_file), atol=1e-5
    )


def test_the_spark_snapshot_logs_loads_and_answers_like_the_local_one(
    tracking_store: str, local: BuildResult, on_spark: Path
) -> None:
    answers = []
    for snapshot in (local.snapshot_dir, on_spark):
        with mlflow.start_run():
            uri = log_rag_model(RagConfig(), snapshot).model_uri
        model = mlflow.pyfunc.load_model(uri)
        answers.append(model.predict(pd.DataFrame({"question": QUESTIONS}), params={"k": 3}))
    from_local, from_spark = answers
    assert [a["answer"] for a in from_spark] == [a["answer"] for a in from_local]
    assert [[s["id"] for s in a["sources"]] for a in from_spark] == [
        [s["id"] for s in a["sources"]] for a in from_local
    ]
    assert all(json.loads(s["metadata"])["title"] for a in from_spark for s in a["sources"])


def test_a_spark_build_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("keep me")

    result = CliRunner().invoke(
        cli,
        ["build", "--engine", "spark", "--data-path", str(SAMPLE_CORPUS), "--out", str(tmp_path)],
    )

    assert result.exit_code == 1
    assert f"snapshot folder {tmp_path} is not empty; choose a new folder" in result.output


def test_texts_embedded_in_several_spark_jobs_come_back_in_order(spark: Any) -> None:
    from rag_model.embedders import HashEmbedder
    from rag_spark.indexing import SparkEmbedder

    settings = RagConfig.from_dict({"embedding": {"model": "hash-embedder"}}).to_dict()
    texts = [f"text number {n} about topic {n % 3}" for n in range(11)]
    on_spark = SparkEmbedder(spark, settings, partitions=2, rows_per_job=4)  # jobs of 4, 4, 3

    vectors = on_spark.embed(texts)

    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, HashEmbedder().embed(texts), atol=1e-6)
    assert on_spark.embed([]).shape == (0, on_spark.dimension)


def test_a_build_streamed_in_several_slices_equals_the_local_build(
    spark: Any,
    corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from rag_spark import indexing

    config = RagConfig.from_dict({"embedding": {"model": "hash-embedder"}})
    few = tmp_path / "few.jsonl"
    few.write_text("\n".join(corpus.read_text().splitlines()[:6]) + "\n")
    monkeypatch.setattr(indexing, "ROWS_PER_JOB", 4)  # chunks and sentences in several slices
    local = build_snapshot(config, few, tmp_path / "local", embedding_cache=tmp_path / "l.db")

    def on_spark(out: str) -> BuildResult:
        return indexing.build_snapshot_on_spark(
            spark,
            config,
            few,
            tmp_path / out,
            partitions=2,
            embedding_cache=tmp_path / "s.db",
            progress=True,
        )

    cold, warm = on_spark("cold"), on_spark("warm")

    assert local.chunk_count > 2 * 4 and local.counts["build_sentences_total"] > 2 * 4
    log = capsys.readouterr().err
    assert f"spark: chunk vectors 8 of {local.chunk_count}" in log  # written a slice at a time
    assert cold.counts == local.counts  # every unique text embedded once, whatever the slices
    assert warm.counts["build_chunks_reused"] == warm.counts["build_chunks_total"]
    assert warm.counts["build_sentences_reused"] == warm.counts["build_sentences_total"]
    assert set(cold.seconds) == {
        "ingest_seconds",
        "chunk_embed_seconds",
        "index_seconds",
        "build_seconds",
    }
    # the hash embedder is exact: every file but Chroma's is byte for byte the local one's
    expected = {n: d for n, d in local.manifest["files"].items() if not n.startswith(CHROMA_DIR)}
    for built in (cold, warm):
        files = built.manifest["files"]
        assert {n: d for n, d in files.items() if not n.startswith(CHROMA_DIR)} == expected
        assert built.manifest["corpus_fingerprint"] == local.manifest["corpus_fingerprint"]
    streamed = chroma_contents(cold.snapshot_dir, tmp_path / "a")
    whole = chroma_contents(local.snapshot_dir, tmp_path / "b")
    for field in ("ids", "documents", "metadatas"):
        assert streamed[field] == whole[field], field
    np.testing.assert_array_equal(streamed["embeddings"], whole["embeddings"])
