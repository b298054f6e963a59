"""Index builds on Spark: chunk and embed on executors, write the snapshot on the driver.

The driver reads the corpus with ``rag_model.ingestion`` (the same validation, ids and
fingerprint as a local build) and hands the documents to Spark. Chunking runs in
``mapInPandas`` with ``rag_model.chunking`` (so chunk ids are the same), and embedding in a
second ``mapInPandas`` whose encoder is loaded once per Python worker from the bundled MiniLM
files (and reused by every task that worker runs). The chunk vectors, and each chunk's
sentence vectors when extractive answers want them, come back to the driver, which writes
them with ``rag_model.build.write_snapshot``: the same Chroma snapshot and manifest as
``build_snapshot``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from rag_model.build import BuildResult, check_chunks, wants_sentence_vectors, write_snapshot
from rag_model.config import RagConfig
from rag_model.documents import Chunk
from rag_model.embedders import Embedder, PrecomputedEmbedder
from rag_model.index import check_snapshot_target
from rag_model.ingestion import load_documents

DOCUMENT_SCHEMA = "position long, id string, text string, metadata string"
CHUNK_SCHEMA = (
    "position long, order long, id string, document_id string, text string, metadata string"
)
EMBEDDED_SCHEMA = (
    f"{CHUNK_SCHEMA}, vector array<float>, sentences array<string>, "
    "sentence_vectors array<array<float>>"
)

# one encoder per Python worker process, by config: Spark reuses its Python workers across
# tasks, so a worker loads MiniLM once, not once per partition
_ENCODERS: dict[str, Embedder] = {}


def build_snapshot_on_spark(
    spark: Any,
    config: RagConfig,
    data_path: str | Path,
    snapshot_dir: str | Path,
    partitions: int | None = None,
) -> BuildResult:
    """``rag_model.build.build_snapshot`` with chunking and embedding on Spark.

    Args:
        spark: the ``SparkSession`` (``rag_spark.session.spark_session()``).
        config: the pipeline config (chunking, embedder, index).
        data_path: a folder of documents or a .jsonl file, read on the driver.
        snapshot_dir: a new or empty folder for the snapshot.
        partitions: how many partitions the documents are split into (default: Spark's
            default parallelism, one per core on ``local[n]``).

    Raises:
        ConfigError: ``snapshot_dir`` is not empty.
        IngestionError: unreadable files, duplicate ids, or no documents or chunks.
    """
    import pandas as pd

    check_snapshot_target(Path(snapshot_dir))  # before the Spark job, not after
    started = time.perf_counter()
    corpus = load_documents(data_path)
    documents = pd.DataFrame(
        {
            "position": range(len(corpus.documents)),
            "id": [document.id for document in corpus.documents],
            "text": [document.text for document in corpus.documents],
            # Chroma metadata are scalars: JSON keeps str / int / float / bool apart
            "metadata": [json.dumps(dict(document.metadata)) for document in corpus.documents],
        }
    )
    frame = spark.createDataFrame(documents, schema=DOCUMENT_SCHEMA)
    if partitions:
        frame = frame.repartition(partitions)
    ingested = time.perf_counter()
    settings = config.to_dict()
    sentences = wants_sentence_vectors(config)
    embedded = frame.mapInPandas(partial(chunk_batches, settings=settings), CHUNK_SCHEMA)
    embedded = embedded.mapInPandas(
        partial(embed_batches, settings=settings, sentences=sentences), EMBEDDED_SCHEMA
    )
    table = embedded.toArrow().sort_by([("position", "ascending"), ("order", "ascending")])
    computed = time.perf_counter()

    rows = table.drop_columns(["vector", "sentence_vectors"]).to_pylist()
    chunks = [
        Chunk(
            id=row["id"],
            document_id=row["document_id"],
            text=row["text"],
            metadata=json.loads(row["metadata"]),
        )
        for row in rows
    ]
    check_chunks(chunks, data_path)
    vectors = _matrix(table.column("vector"))
    sentence_vectors: dict[str, np.ndarray] = {}
    if sentences:
        per_chunk = table.column("sentence_vectors").to_pylist()
        for row, chunk_vectors in zip(rows, per_chunk, strict=True):
            for sentence, vector in zip(row["sentences"], chunk_vectors, strict=True):
                sentence_vectors.setdefault(sentence, np.asarray(vector, dtype=np.float32))
    embedder = PrecomputedEmbedder(config.embedding.model, sentence_vectors, vectors.shape[1])
    return write_snapshot(
        config,
        corpus,
        chunks,
        vectors,
        snapshot_dir,
        embedder,
        {"ingest_seconds": ingested - started, "chunk_embed_seconds": computed - ingested},
    )


def chunk_batches(batches: Iterator[Any], settings: dict[str, Any]) -> Iterator[Any]:
    """``mapInPandas``: documents -> chunks, split by ``rag_model.chunking`` as locally."""
    import pandas as pd

    from rag_model.chunking import chunk_documents
    from rag_model.documents import Document

    config = RagConfig.from_dict(settings)
    sized_in_tokens = config.chunking.strategy != "recursive"
    counter = _encoder(settings).token_counter() if sized_in_tokens else None
    for batch in batches:
        out: dict[str, list[Any]] = {name: [] for name in _names(CHUNK_SCHEMA)}
        for position, identifier, text, metadata in batch.itertuples(index=False):
            document = Document(identifier, text, json.loads(metadata))
            # one document at a time, so each chunk knows its document's position
            for order, chunk in enumerate(chunk_documents([document], config.chunking, counter)):
                out["position"].append(position)
                out["order"].append(order)
                out["id"].append(chunk.id)
                out["document_id"].append(chunk.document_id)
                out["text"].append(chunk.text)
                out["metadata"].append(json.dumps(dict(chunk.metadata)))
        yield pd.DataFrame(out)


def embed_batches(
    batches: Iterator[Any], settings: dict[str, Any], sentences: bool
) -> Iterator[Any]:
    """``mapInPandas``: chunks -> chunks with their vector (and their sentences' vectors)."""
    from rag_model.sentences import split_sentences

    encoder = _encoder(settings)
    batch_size = RagConfig.from_dict(settings).embedding.batch_size
    for batch in batches:
        texts = batch["text"].tolist()
        out = batch.copy()
        out["vector"] = list(encoder.embed(texts, batch_size=batch_size))
        per_chunk = [split_sentences(text) if sentences else [] for text in texts]
        flat = [sentence for group in per_chunk for sentence in group]
        vectors = encoder.embed(flat, batch_size=batch_size)
        grouped, start = [], 0
        for group in per_chunk:
            grouped.append(list(vectors[start : start + len(group)]))
            start += len(group)
        out["sentences"] = per_chunk
        out["sentence_vectors"] = grouped
        yield out


def _encoder(settings: dict[str, Any]) -> Embedder:
    from rag_model.embedders import make_embedder

    key = json.dumps(settings["embedding"], sort_keys=True)
    if key not in _ENCODERS:
        _ENCODERS[key] = make_embedder(RagConfig.from_dict(settings).embedding)
    return _ENCODERS[key]


def _names(schema: str) -> list[str]:
    return [field.strip().split(" ")[0] for field in schema.split(",")]


def _matrix(column: Any) -> np.ndarray:
    """A list<float> Arrow column as a float32 (rows, dimension) matrix, without Python lists."""
    flat = column.combine_chunks()
    dimension = len(flat[0]) if len(flat) else 0
    return flat.flatten().to_numpy().astype(np.float32, copy=False).reshape(-1, dimension)
