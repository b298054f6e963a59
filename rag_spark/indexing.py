"""Index builds on Spark: chunk and embed on executors, write the snapshot on the driver.

The driver reads the corpus with ``rag_model.ingestion`` (the same validation, ids and
fingerprint as a local build) and hands the documents to Spark. Chunking runs in
``mapInPandas`` with ``rag_model.chunking`` (so chunk ids are the same).

The vectors then stream through the driver one slice of ``ROWS_PER_JOB`` chunks at a time:
for each slice the driver asks the persistent embedding cache for its texts, sends only the
texts it misses to Spark (one job: a second ``mapInPandas`` whose encoder is loaded once per
Python worker), stores them in the cache, and hands the slice's float32 matrix to
``rag_model.build.write_snapshot``, which adds it to Chroma before the next slice is embedded.
The sentences of the chunks, when extractive answers want sentence vectors, go the same way
into the snapshot's ``sentences/vectors.npy``. So the driver holds the chunk texts (BM25 needs
them) but never more than one slice of vectors: not a matrix of every vector, and no Python
list or dict of them. The snapshot and manifest are those of ``build_snapshot``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from rag_model.build import BuildResult, Tally, check_chunks, write_snapshot
from rag_model.config import RagConfig
from rag_model.documents import Chunk
from rag_model.embedders import Embedder
from rag_model.embedding_cache import cached_embedder
from rag_model.index import check_snapshot_target
from rag_model.ingestion import Corpus, load_documents
from rag_model.progress import log_line

DOCUMENT_SCHEMA = "position long, id string, text string, metadata string"
CHUNK_SCHEMA = (
    "position long, order long, id string, document_id string, text string, metadata string"
)
TEXT_SCHEMA = "row long, text string"
VECTOR_SCHEMA = "row long, vector array<float>"
# chunks (or sentences) per slice, and texts per Spark job: the driver holds one slice of
# vectors at a time (20k x 384 float32 = 31 MB, plus as much in Arrow as it comes back), and a
# job's start (~0.1-1 s in local mode) is small beside embedding 20k texts (minutes on CPU)
ROWS_PER_JOB = 20_000

# one encoder per Python worker process, by config: Spark reuses its Python workers across
# tasks, so a worker loads MiniLM once, not once per partition
_ENCODERS: dict[str, Embedder] = {}


def build_snapshot_on_spark(
    spark: Any,
    config: RagConfig,
    data_path: str | Path,
    snapshot_dir: str | Path,
    partitions: int | None = None,
    embedding_cache: str | Path | None = None,
    progress: bool = False,
) -> BuildResult:
    """``rag_model.build.build_snapshot`` with chunking and embedding on Spark.

    Args:
        spark: the ``SparkSession`` (``rag_spark.session.spark_session()``).
        config: the pipeline config (chunking, embedder, index).
        data_path: a folder of documents or a .jsonl file, read on the driver.
        snapshot_dir: a new or empty folder for the snapshot.
        partitions: how many partitions the documents and texts are split into (default:
            Spark's default parallelism, one per core on ``local[n]``).
        embedding_cache: the persistent cache file (None: embed every text on Spark).
        progress: one line per step.

    Raises:
        ConfigError: ``snapshot_dir`` is not empty.
        IngestionError: unreadable files, duplicate ids, or no documents or chunks.
    """
    check_snapshot_target(Path(snapshot_dir))  # before the Spark job, not after
    started = time.perf_counter()
    corpus = load_documents(data_path)
    frame = _documents_frame(spark, corpus, partitions)
    ingested = time.perf_counter()
    settings = config.to_dict()
    chunks = _chunks(frame, settings)
    check_chunks(chunks, data_path)
    log_line(progress, f"spark: {len(chunks)} chunks of {len(corpus.documents)} documents")
    split = time.perf_counter()
    on_spark = SparkEmbedder(spark, settings, partitions)
    embedder = cached_embedder(on_spark, config.embedding, embedding_cache)
    tally = Tally(embedder)
    embedding = {"seconds": 0.0}
    try:
        result = write_snapshot(
            config,
            corpus,
            chunks,
            _vector_slices(tally, chunks, config.embedding.batch_size, progress, embedding),
            snapshot_dir,
            embedder,  # sentence vectors: the cache first, then Spark for what it misses
            {"ingest_seconds": ingested - started, "chunk_embed_seconds": split - ingested},
            progress=progress,
            slice_rows=ROWS_PER_JOB,
        )
    finally:
        if hasattr(embedder, "close"):
            embedder.close()
    counts = tally.counts("build_chunks")
    log_line(
        progress,
        f"chunk vectors: {counts['build_chunks_embedded']} embedded, "
        f"{counts['build_chunks_reused']} reused from the embedding cache",
    )
    # the chunks were embedded while the writer ran: their seconds move out of index_seconds
    seconds = dict(result.seconds)
    seconds["chunk_embed_seconds"] += embedding["seconds"]
    seconds["index_seconds"] -= embedding["seconds"]
    return replace(result, counts={**counts, **result.counts}, seconds=seconds)


def _documents_frame(spark: Any, corpus: Corpus, partitions: int | None) -> Any:
    """The documents as a Spark DataFrame (the pandas copy is freed when this returns)."""
    import pandas as pd

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
    return frame.repartition(partitions) if partitions else frame


def _chunks(frame: Any, settings: dict[str, Any]) -> list[Chunk]:
    """Chunk on Spark; the chunks in document order, as the local build orders them.

    Converted one Arrow batch at a time, and the Arrow table is freed when this returns (it
    would otherwise hold every chunk text a second time while the snapshot is written).
    """
    chunked = frame.mapInPandas(partial(chunk_batches, settings=settings), CHUNK_SCHEMA)
    table = chunked.toArrow().sort_by([("position", "ascending"), ("order", "ascending")])
    chunks = []
    for batch in table.to_batches():
        chunks.extend(
            Chunk(
                id=row["id"],
                document_id=row["document_id"],
                text=row["text"],
                metadata=json.loads(row["metadata"]),
            )
            for row in batch.to_pylist()
        )
    return chunks


def _vector_slices(
    tally: Tally,
    chunks: Sequence[Chunk],
    batch_size: int,
    progress: bool,
    embedding: dict[str, float],
) -> Iterator[np.ndarray]:
    """The chunks' vectors, ``ROWS_PER_JOB`` at a time: cache first, then Spark for misses.

    Adds the seconds spent embedding to ``embedding["seconds"]``.
    """
    for start in range(0, len(chunks), ROWS_PER_JOB):
        began = time.perf_counter()
        texts = [chunk.text for chunk in chunks[start : start + ROWS_PER_JOB]]
        vectors = tally.embed(texts, batch_size=batch_size, progress=progress)
        embedding["seconds"] += time.perf_counter() - began
        if len(chunks) > ROWS_PER_JOB:
            log_line(progress, f"spark: chunk vectors {start + len(texts)} of {len(chunks)}")
        yield vectors


class SparkEmbedder(Embedder):
    """Embeds texts on Spark executors; the vectors stream back into one float32 matrix."""

    def __init__(
        self,
        spark: Any,
        settings: dict[str, Any],
        partitions: int | None,
        rows_per_job: int = ROWS_PER_JOB,
    ) -> None:
        self.spark = spark
        self.settings = settings
        self.partitions = partitions or spark.sparkContext.defaultParallelism
        self.rows_per_job = rows_per_job
        # the embedding cache hands this many missed texts at a time to ``embed``: one Spark
        # job per slice, not one per cache block of 512
        self.embed_block = rows_per_job
        config = RagConfig.from_dict(settings).embedding
        self.model_id = config.model
        self.dimension = _encoder(settings).dimension  # no model load: a class attribute

    def token_counter(self):  # noqa: ANN201 - chunking ran on Spark; here for the interface
        return _encoder(self.settings).token_counter()

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed(texts)

    def embed(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        import pandas as pd

        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        done = 0
        for start in range(0, len(texts), self.rows_per_job):
            part = texts[start : start + self.rows_per_job]
            frame = self.spark.createDataFrame(
                pd.DataFrame({"row": range(start, start + len(part)), "text": list(part)}),
                schema=TEXT_SCHEMA,
            ).repartition(self.partitions)
            embedded = frame.mapInPandas(
                partial(embed_batches, settings=self.settings), VECTOR_SCHEMA
            )
            # one Arrow batch at a time straight into the matrix: no Python list of vectors
            for batch in _arrow_batches(embedded):
                rows = batch.column("row").to_numpy()
                vectors[rows] = _matrix(batch.column("vector"), self.dimension)
                done += len(rows)
            if len(texts) > self.rows_per_job:
                log_line(progress, f"spark: embedded {done} of {len(texts)} texts")
        log_line(progress, f"spark: embedded {done} texts")
        return vectors


def _arrow_batches(frame: Any) -> Iterator[Any]:
    # DataFrame.toArrow() gathers one Table (one slice of texts here); its record batches are
    # read one after another
    yield from frame.toArrow().to_batches()


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


def embed_batches(batches: Iterator[Any], settings: dict[str, Any]) -> Iterator[Any]:
    """``mapInPandas``: texts -> their vectors, with the encoder of this Python worker."""
    import pandas as pd

    encoder = _encoder(settings)
    batch_size = RagConfig.from_dict(settings).embedding.batch_size
    for batch in batches:
        vectors = encoder.embed(batch["text"].tolist(), batch_size=batch_size)
        yield pd.DataFrame({"row": batch["row"], "vector": list(vectors)})


def _encoder(settings: dict[str, Any]) -> Embedder:
    from rag_model.embedders import make_embedder

    key = json.dumps(settings["embedding"], sort_keys=True)
    if key not in _ENCODERS:
        _ENCODERS[key] = make_embedder(RagConfig.from_dict(settings).embedding)
    return _ENCODERS[key]


def _names(schema: str) -> list[str]:
    return [field.strip().split(" ")[0] for field in schema.split(",")]


def _matrix(column: Any, dimension: int) -> np.ndarray:
    """A list<float> Arrow column as a float32 (rows, dimension) matrix, without Python lists."""
    flat = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    return flat.flatten().to_numpy().astype(np.float32, copy=False).reshape(-1, dimension)
