"""Tests for the Chroma snapshot: build_index, ChromaIndex.open, queries, filters, integrity."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from rag_model.config import IndexConfig
from rag_model.documents import Chunk
from rag_model.embedders import HashEmbedder
from rag_model.errors import IndexNotFoundError, IntegrityError, QueryError
from rag_model.index import CHROMA_DIR, ChromaIndex, build_index
from rag_model.manifest import file_digests, verify_manifest
from tests.conftest import chroma_contents

TOPICS = {
    "oxygen": ("Oxygen", "Oxygen is a gas that animals breathe."),
    "iron": ("Iron", "Iron is a metal that rusts in water."),
    "bridge": ("Bridge", "Brunel built the suspension bridge over the gorge."),
    "normans": ("Normans", "The Normans conquered England in 1066."),
    "violin": ("Violin", "The violin is played with a horsehair bow."),
}

# two chunks per topic: 10 chunks
CHUNKS = [
    Chunk(
        id=f"{topic}-{part}",
        document_id=f"{topic}.txt",
        text=text if part == 0 else f"More about {title.lower()}: {text.lower()}",
        metadata={"title": title, "document_id": f"{topic}.txt", "chunk_index": part},
    )
    for topic, (title, text) in TOPICS.items()
    for part in (0, 1)
]

EMBEDDER = HashEmbedder()


def _build(folder: Path, config: IndexConfig | None = None, vectors: object = None) -> dict:
    """``CHUNKS`` built into ``folder``; ``vectors`` (a matrix or slices) default to theirs."""
    if vectors is None:
        vectors = EMBEDDER.embed([chunk.text for chunk in CHUNKS])
    return build_index(
        CHUNKS,
        vectors,  # type: ignore[arg-type]
        folder,
        config or IndexConfig(),
        embedder_id=EMBEDDER.model_id,
        corpus_fingerprint="f" * 64,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("index") / "snapshot"
    return folder, _build(folder)


@pytest.fixture
def snapshot(built: tuple[Path, dict]) -> Path:
    return built[0]


@pytest.fixture
def snapshot_copy(snapshot: Path, tmp_path: Path) -> Path:
    """A private copy of the module's snapshot, for tests that damage it."""
    return Path(shutil.copytree(snapshot, tmp_path / "copy"))


@pytest.fixture
def index(snapshot: Path):
    opened = ChromaIndex.open(snapshot)
    yield opened
    opened.close()


def _vector(text: str) -> np.ndarray:
    return EMBEDDER.embed([text])[0]


def test_build_index_writes_a_manifest_of_the_snapshot(built: tuple[Path, dict]) -> None:
    folder, manifest = built

    assert manifest["chunk_count"] == 10
    assert manifest["embedding_dimension"] == 384
    assert manifest["embedder"] == "hash-embedder"
    assert manifest["corpus_fingerprint"] == "f" * 64
    assert manifest["space"] == "cosine"
    assert "chroma/chroma.sqlite3" in manifest["files"]
    assert all(name.startswith((f"{CHROMA_DIR}/", "bm25/")) for name in manifest["files"])
    assert "bm25/chunk_ids.json" in manifest["files"]  # every snapshot carries BM25 too
    assert verify_manifest(folder) == manifest


def test_open_reports_the_manifest_counts(index: ChromaIndex) -> None:
    assert index.chunk_count == 10
    assert index.dimension == 384


def test_query_returns_k_results_by_descending_score(index: ChromaIndex) -> None:
    results = index.query(_vector("who built the suspension bridge"), k=4)

    assert len(results) == 4
    assert results[0].id in {"bridge-0", "bridge-1"}
    assert {r.id for r in results[:2]} == {"bridge-0", "bridge-1"}
    scores = [result.score for result in results]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > scores[-1]


def test_query_results_carry_text_document_and_metadata(index: ChromaIndex) -> None:
    top = index.query(_vector("Oxygen is a gas that animals breathe."), k=1)

    assert len(top) == 1
    assert top[0].id == "oxygen-0"
    assert top[0].document_id == "oxygen.txt"
    assert top[0].text == "Oxygen is a gas that animals breathe."
    assert top[0].metadata == {"title": "Oxygen", "document_id": "oxygen.txt", "chunk_index": 0}
    assert top[0].score == pytest.approx(1.0, abs=1e-4)  # cosine similarity of the same text


def test_k_larger_than_the_index_returns_every_chunk(index: ChromaIndex) -> None:
    results = index.query(_vector("metal"), k=50)

    assert sorted(r.id for r in results) == sorted(chunk.id for chunk in CHUNKS)


def test_where_filter_restricts_results(index: ChromaIndex) -> None:
    results = index.query(_vector("who built the suspension bridge"), k=4, where={"title": "Iron"})

    assert [r.id for r in results] in (["iron-0", "iron-1"], ["iron-1", "iron-0"])


def test_where_filter_with_operators(index: ChromaIndex) -> None:
    results = index.query(
        _vector("gas"),
        k=10,
        where={"$and": [{"title": {"$in": ["Oxygen", "Violin"]}}, {"chunk_index": 0}]},
    )

    assert sorted(r.id for r in results) == ["oxygen-0", "violin-0"]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"title": {"$bad": 1}}, "invalid filter: Expected where operator to be one of"),
        ({"$and": []}, "invalid filter: Expected where value for $and or $or to be a list"),
        (
            {"title": "Iron", "chunk_index": 0},
            "invalid filter: Expected where to have exactly one operator",
        ),
        # passes chromadb's Python checks; its Rust core refuses it (was a 500 in the server)
        ({"year": {"$gt": float("inf")}}, "invalid filter: Invalid where clause"),
    ],
)
def test_invalid_filter_raises_query_error(index: ChromaIndex, where: dict, expected: str) -> None:
    with pytest.raises(QueryError, match=re.escape(expected)) as caught:
        index.query(_vector("bridge"), k=3, where=where)

    assert caught.value.field == "filter"


def test_query_many_answers_each_vector(index: ChromaIndex) -> None:
    vectors = EMBEDDER.embed(["suspension bridge built", "violin horsehair bow"])

    results = index.query_many(vectors, k=2)

    assert [len(hits) for hits in results] == [2, 2]
    assert results[0][0].document_id == "bridge.txt"
    assert results[1][0].document_id == "violin.txt"


def test_querying_never_modifies_the_snapshot(snapshot: Path) -> None:
    before = file_digests(snapshot)
    index = ChromaIndex.open(snapshot)
    try:
        index.query(_vector("bridge"), k=3)
        index.query(_vector("oxygen"), k=3, where={"title": "Oxygen"})
    finally:
        index.close()

    assert file_digests(snapshot) == before
    verify_manifest(snapshot)  # no altered, missing or unexpected file


def test_a_closed_index_reopens_on_the_next_query(snapshot: Path) -> None:
    index = ChromaIndex.open(snapshot)
    try:
        first = index.query(_vector("bridge"), k=2)
        index.close()
        again = index.query(_vector("bridge"), k=2)
    finally:
        index.close()

    assert [r.id for r in again] == [r.id for r in first]


def test_l2_space_ranks_the_nearest_chunk_first(tmp_path: Path) -> None:
    _build(tmp_path / "l2", IndexConfig(space="l2"))
    index = ChromaIndex.open(tmp_path / "l2")
    try:
        results = index.query(_vector("The Normans conquered England in 1066."), k=3)
    finally:
        index.close()

    assert results[0].id == "normans-0"
    assert results[0].score == pytest.approx(0.0, abs=1e-4)  # minus the squared distance
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def test_build_into_a_non_empty_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "leftover.txt").write_text("x")

    with pytest.raises(
        ValueError, match=re.escape(f"snapshot folder {tmp_path} is not empty; choose a new folder")
    ):
        _build(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["leftover.txt"]


def test_build_refuses_mismatched_chunks_and_embeddings(tmp_path: Path) -> None:
    vectors = EMBEDDER.embed(["only one"])

    with pytest.raises(ValueError, match="^2 chunks but 1 embeddings$"):
        build_index(
            CHUNKS[:2],
            vectors,
            tmp_path / "snap",
            IndexConfig(),
            embedder_id="hash-embedder",
            corpus_fingerprint="f" * 64,
        )


def test_build_refuses_no_chunks(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="^cannot build an index with no chunks$"):
        build_index(
            [],
            np.zeros((0, 384), dtype=np.float32),
            tmp_path / "snap",
            IndexConfig(),
            embedder_id="hash-embedder",
            corpus_fingerprint="f" * 64,
        )


@pytest.mark.parametrize("name", ["empty", "missing"])
def test_open_without_a_snapshot_raises_index_not_found(tmp_path: Path, name: str) -> None:
    folder = tmp_path / name
    if name == "empty":
        folder.mkdir()

    with pytest.raises(
        IndexNotFoundError, match=re.escape(f"no Chroma snapshot at {folder}; build one with")
    ):
        ChromaIndex.open(folder)


def test_open_refuses_an_altered_snapshot(snapshot_copy: Path) -> None:
    with (snapshot_copy / "chroma" / "chroma.sqlite3").open("ab") as handle:
        handle.write(b"\0")

    with pytest.raises(IntegrityError, match="file chroma/chroma.sqlite3 is [0-9]+ bytes"):
        ChromaIndex.open(snapshot_copy)


def test_open_refuses_a_chroma_folder_without_manifest(snapshot_copy: Path) -> None:
    (snapshot_copy / "manifest.json").unlink()

    with pytest.raises(
        IntegrityError,
        match=re.escape(f"no manifest.json in {snapshot_copy}: not a rag-model artifact"),
    ):
        ChromaIndex.open(snapshot_copy)


def test_chunk_texts_are_read_from_chroma_once(index: ChromaIndex) -> None:
    first = index.query(_vector("oxygen"), k=3)
    collection = index._collection  # noqa: SLF001 - count the reads behind the cache
    reads: list[list[str]] = []
    original = collection.get

    def counting_get(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        reads.append(kwargs.get("ids") or [])
        return original(*args, **kwargs)

    index._collection = _Proxy(collection, get=counting_get)  # noqa: SLF001
    again = index.query(_vector("oxygen"), k=3)

    assert reads == []  # every text came from the cache
    assert [(c.id, c.text, c.metadata) for c in again] == [
        (c.id, c.text, c.metadata) for c in first
    ]
    again[0].metadata["title"] = "changed"  # results get copies: the cache is not touched
    assert index.query(_vector("oxygen"), k=3)[0].metadata == first[0].metadata


class _Proxy:
    def __init__(self, inner: object, **overrides: object) -> None:
        self._inner, self._overrides = inner, overrides

    def __getattr__(self, name: str) -> object:
        return self._overrides.get(name) or getattr(self._inner, name)


def test_vectors_streamed_in_slices_give_the_snapshot_of_the_whole_matrix(
    built: tuple[Path, dict], tmp_path: Path
) -> None:
    vectors = EMBEDDER.embed([chunk.text for chunk in CHUNKS])
    slices = (vectors[start : start + 3] for start in range(0, len(CHUNKS), 3))  # 3, 3, 3, 1

    manifest = _build(tmp_path / "streamed", vectors=slices)

    whole_folder, whole = built
    for field in ("chunk_count", "embedding_dimension", "embedder", "corpus_fingerprint"):
        assert manifest[field] == whole[field], field
    assert {n: d for n, d in manifest["files"].items() if not n.startswith(CHROMA_DIR)} == {
        n: d for n, d in whole["files"].items() if not n.startswith(CHROMA_DIR)
    }
    streamed = chroma_contents(tmp_path / "streamed", tmp_path / "a")
    matrix = chroma_contents(whole_folder, tmp_path / "b")
    assert streamed["ids"] == matrix["ids"] and streamed["documents"] == matrix["documents"]
    np.testing.assert_array_equal(streamed["embeddings"], matrix["embeddings"])


@pytest.mark.parametrize(
    ("sizes", "message"),
    [((4, 4), "10 chunks but 8 embeddings"), ((4, 4, 4), "10 chunks but at least 12 embeddings")],
)
def test_slices_that_do_not_cover_the_chunks_are_refused_and_leave_no_files(
    tmp_path: Path, sizes: tuple[int, ...], message: str
) -> None:
    vectors = EMBEDDER.embed([chunk.text for chunk in CHUNKS + CHUNKS])
    slices = (vectors[sum(sizes[:n]) : sum(sizes[: n + 1])] for n in range(len(sizes)))

    with pytest.raises(ValueError, match=f"^{message}$"):
        _build(tmp_path / "snap", vectors=slices)
    assert not (tmp_path / "snap").exists()


def test_a_build_that_fails_part_way_leaves_its_empty_folder_empty(tmp_path: Path) -> None:
    def slices():  # noqa: ANN202 - the first slice, then the producer fails (a lost executor)
        yield EMBEDDER.embed([chunk.text for chunk in CHUNKS[:5]])
        raise RuntimeError("executor lost")

    folder = tmp_path / "snap"
    folder.mkdir()
    with pytest.raises(RuntimeError, match="^executor lost$"):
        _build(folder, vectors=slices())
    assert folder.is_dir() and not any(folder.iterdir())  # a retry can build into it
