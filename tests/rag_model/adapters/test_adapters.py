"""LangChain and LlamaIndex retrievers over the same packaged snapshot agree with the pipeline."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from rag_model.adapters.langchain import RagModelRetriever
from rag_model.adapters.llama_index import RagModelLlamaRetriever
from rag_model.build import build_snapshot
from rag_model.config import RagConfig
from rag_model.packaging.loading import load_pipeline
from rag_model.packaging.log import log_rag_model
from rag_model.pipeline import RagPipeline
from tests.conftest import SAMPLE_CORPUS

QUESTION = "When was the Duchy of Normandy founded?"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> RagPipeline:
    config = RagConfig.from_dict(
        {"embedding": {"model": "hash-embedder"}, "generation": {"generator": "echo"}}
    )
    root = tmp_path_factory.mktemp("adapters")
    build_snapshot(config, SAMPLE_CORPUS, root / "snapshot")
    return RagPipeline.from_snapshot(config, root / "snapshot")


def test_langchain_retriever_returns_the_pipeline_results(pipeline: RagPipeline) -> None:
    expected = pipeline.retrieve(QUESTION, k=3)
    documents = RagModelRetriever(pipeline=pipeline, k=3).invoke(QUESTION)
    assert [d.id for d in documents] == [c.id for c in expected]
    assert documents[0].page_content == expected[0].text
    assert documents[0].metadata["score"] == expected[0].score
    assert documents[0].metadata["document_id"] == expected[0].document_id
    assert set(documents[0].metadata["scores"]) <= {"dense", "lexical", "fused"}


def test_llama_index_retriever_returns_the_pipeline_results(pipeline: RagPipeline) -> None:
    expected = pipeline.retrieve(QUESTION, k=3)
    nodes = RagModelLlamaRetriever(pipeline, k=3).retrieve(QUESTION)
    assert [n.node.node_id for n in nodes] == [c.id for c in expected]
    assert [n.score for n in nodes] == [c.score for c in expected]
    assert nodes[0].node.get_content() == expected[0].text


def test_filters_pass_through(pipeline: RagPipeline) -> None:
    documents = RagModelRetriever(pipeline=pipeline, k=4, filter={"title": "Oxygen"}).invoke(
        QUESTION
    )
    assert {d.metadata["title"] for d in documents} == {"Oxygen"}


@pytest.mark.integration
def test_both_wrap_a_pipeline_loaded_from_a_model_uri(tracking_store: str, tmp_path: Path) -> None:
    config = RagConfig.from_dict(
        {"embedding": {"model": "hash-embedder"}, "generation": {"generator": "echo"}}
    )
    built = build_snapshot(config, SAMPLE_CORPUS, tmp_path / "snapshot")
    with mlflow.start_run():
        uri = log_rag_model(config, built.snapshot_dir).model_uri
    lang = RagModelRetriever(pipeline=load_pipeline(uri), k=2).invoke(QUESTION)
    llama = RagModelLlamaRetriever(load_pipeline(uri), k=2).retrieve(QUESTION)
    assert [d.id for d in lang] == [n.node.node_id for n in llama]
    assert len(lang) == 2
