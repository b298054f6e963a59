"""Server-mode pieces that need no Chroma server: connecting, the content digest, the refusals."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from rag_model.build import BuildResult
from rag_model.chroma_server import RemoteChromaIndex, collection_digest, connect
from rag_model.config import IndexConfig
from rag_model.errors import IndexServerError, IntegrityError
from rag_model.index import ChromaIndex
from rag_model.manifest import write_manifest
from tests.conftest import free_port


def server_index(**overrides: object) -> IndexConfig:
    return IndexConfig.model_validate(
        {
            "location": "server",
            "server_url": "http://127.0.0.1:8000",
            "collection": "docs",
            **overrides,
        }
    )


def test_connect_names_the_unset_token_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAG_TEST_CHROMA_TOKEN", raising=False)

    with pytest.raises(IndexServerError) as caught:
        connect(server_index(token_env="RAG_TEST_CHROMA_TOKEN"))

    assert str(caught.value) == (
        "index.token_env names RAG_TEST_CHROMA_TOKEN, which is not set; export the Chroma "
        "server's token as RAG_TEST_CHROMA_TOKEN"
    )


def test_connect_to_a_port_with_no_server_says_how_to_start_one() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(IndexServerError) as caught:
        connect(server_index(server_url=url))

    assert str(caught.value) == (
        f"cannot connect to the Chroma server at {url}: Could not connect to a Chroma server. "
        "Are you sure it is running? Start it (chroma run --path DIR --host HOST --port PORT) "
        "or fix index.server_url"
    )


def _collection(path: Path, name: str, order: list[int], texts: list[str]):  # noqa: ANN202
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(str(path), Settings(anonymized_telemetry=False))
    collection = client.create_collection(name, embedding_function=None)
    vectors = np.random.default_rng(0).normal(size=(len(texts), 8)).astype(np.float32)
    collection.add(
        ids=[f"c{i}" for i in order],
        embeddings=vectors[order],
        documents=[texts[i] for i in order],
        metadatas=[{"n": i, "title": "T"} for i in order],
    )
    return collection


def test_the_content_digest_ignores_order_and_batching_but_not_content(tmp_path: Path) -> None:
    texts = [f"text {i}" for i in range(7)]
    forward = _collection(tmp_path / "a", "forward", list(range(7)), texts)
    backward = _collection(tmp_path / "b", "backward", list(range(6, -1, -1)), texts)
    edited = _collection(tmp_path / "c", "edited", list(range(7)), [*texts[:6], "text six"])

    digest = collection_digest(forward)

    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert collection_digest(forward, batch_size=2) == digest
    assert collection_digest(backward, batch_size=3) == digest
    assert collection_digest(edited) != digest


def test_a_bundled_snapshot_is_not_opened_as_a_server_index(hash_snapshot: BuildResult) -> None:
    with pytest.raises(IntegrityError) as caught:
        RemoteChromaIndex.open_remote(hash_snapshot.snapshot_dir, server_index())

    assert str(caught.value) == (
        f"{hash_snapshot.snapshot_dir} is a bundled snapshot but index.location is 'server'; "
        "publish it ('rag-model publish') and log the model with the server config"
    )


def test_a_server_snapshot_is_not_opened_as_a_bundled_one(tmp_path: Path) -> None:
    write_manifest(tmp_path, location="server", chunk_count=3)

    with pytest.raises(IntegrityError) as caught:
        ChromaIndex.open(tmp_path)

    assert str(caught.value) == (
        f"{tmp_path} holds no Chroma files: its collection is on a Chroma server; load it with "
        "index.location 'server' (docs/chroma-server.md)"
    )
