"""Publish a built snapshot's collection to a Chroma server; stage what a server-mode model ships.

``publish_snapshot`` uploads every record (ids, documents, metadatas, embeddings) of a bundled
snapshot into a new collection on the server, in batches, reads it back to compare every record
with the snapshot, and only then records the fingerprint (with the content digest of the
server's copy) in the collection's metadata: a collection whose upload stopped half-way has no
fingerprint, and no model loads it.

``stage_server_snapshot`` writes the folder a server-mode model version carries instead of the
Chroma files: a manifest with the same fingerprint plus the content digest, the BM25 index
when retrieval uses it (it is a fraction of the vectors' size and keeps lexical search local),
and the build-time sentence vectors when the snapshot has them (leave them out of a very large
index with ``index.sentence_vectors: false``).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag_model.chroma_server import (
    FINGERPRINT_FIELDS,
    LOCATION_SERVER,
    READ_BATCH,
    check_collection,
    collection_digest,
    connect,
    fingerprint_metadata,
    get_collection,
    iter_records,
    recorded_fingerprint,
    server_errors,
)
from rag_model.config import IndexConfig, RagConfig
from rag_model.corpus_table import DOCUMENTS_FILE
from rag_model.errors import ConfigError, IntegrityError, RagError
from rag_model.index import ChromaIndex, check_snapshot_target
from rag_model.lexical import BM25_DIR
from rag_model.manifest import write_manifest
from rag_model.sentences import SENTENCES_DIR

HNSW_KEYS = ("space", "max_neighbors", "ef_construction", "ef_search")
# Chroma re-rounds cosine vectors when it stores them (in the last float32 bit: 36 of the 233
# sample-corpus vectors on upload), so an upload is compared with its snapshot within this
EMBEDDING_TOLERANCE = 1e-6


@dataclass(frozen=True)
class PublishResult:
    """What ``publish_snapshot`` did."""

    server_url: str
    collection: str
    chunk_count: int
    content_digest: str
    seconds: float
    reused: bool  # the collection already held exactly this snapshot


def publish_snapshot(
    snapshot_dir: str | Path,
    config: IndexConfig,
    *,
    batch_size: int = READ_BATCH,
    replace: bool = False,
) -> PublishResult:
    """Upload a bundled snapshot's collection to the Chroma server ``config`` names.

    Publishing the same snapshot again to the same collection changes nothing (``reused``).

    Args:
        snapshot_dir: a snapshot written by ``build_index`` (verified first).
        config: ``index`` settings with ``location: server``, ``server_url`` and ``collection``.
        batch_size: records per request (capped by the server's maximum batch size).
        replace: delete a collection of that name holding something else; without it, refuse.

    Returns:
        Where it went, how many records, the content digest, and how long it took.

    Raises:
        ConfigError: ``config`` is not a server config, or the collection exists and holds
            something else.
        IndexServerError: the server cannot be reached or fails.
        IntegrityError: the snapshot does not verify, or the server's copy differs from it.
    """
    if config.location != LOCATION_SERVER:
        raise ConfigError(
            "publishing needs index.location 'server' with server_url and collection, got "
            f"location {config.location!r}"
        )
    started = time.perf_counter()
    local = ChromaIndex.open(snapshot_dir)
    name, url = str(config.collection), str(config.server_url)
    client = connect(config)
    try:
        if get_collection(client, config) is not None:
            try:
                fingerprint = check_published(client, config, local)
            except RagError as exc:
                if not replace:
                    raise ConfigError(
                        f"collection {name!r} already exists on {url} and does not hold "
                        f"{snapshot_dir} ({exc}); choose a new index.collection, or replace it "
                        "(--replace) if no served model uses it"
                    ) from None
            else:
                return _result(config, fingerprint, started, reused=True)
            with server_errors(config):
                client.delete_collection(name)
        with server_errors(config):
            hnsw = local.chroma_collection().configuration["hnsw"]
            remote = client.create_collection(
                name,
                embedding_function=None,
                configuration={"hnsw": {key: hnsw[key] for key in HNSW_KEYS}},
            )
            step = max(1, min(batch_size, client.get_max_batch_size()))
            for batch in iter_records(local.chroma_collection(), step):
                remote.add(
                    ids=batch["ids"],
                    embeddings=batch["embeddings"],
                    documents=batch["documents"],
                    metadatas=batch["metadatas"],
                )
            # read the server's copy back before the fingerprint vouches for it
            difference = compare_collections(local.chroma_collection(), remote, step)
            if difference:
                raise IntegrityError(
                    f"collection {name!r} on {url} differs from {snapshot_dir} after upload: "
                    f"{difference}; publish again"
                )
            # the digest is of what the server stores: Chroma re-rounds cosine vectors on
            # write, so the snapshot's own bytes would not match (docs/chroma-server.md)
            fingerprint = {
                **_manifest_fields(local.manifest),
                "content_digest": collection_digest(remote, step),
            }
            remote.modify(metadata=fingerprint_metadata(fingerprint))
    finally:
        client.close()
        local.close()
    return _result(config, fingerprint, started, reused=False)


def check_published(client: Any, config: IndexConfig, local: ChromaIndex) -> dict[str, Any]:
    """Check that the server's collection holds the bundled snapshot ``local``; its fingerprint.

    The collection's recorded fingerprint must match the snapshot's manifest, its content
    digest must still be the one recorded at publishing, and every record must equal the
    snapshot's (embeddings within ``EMBEDDING_TOLERANCE``).

    Raises:
        IndexNotFoundError: no such collection.
        IndexServerError: the server cannot be reached or fails.
        IntegrityError: naming what differs.
    """
    collection = get_collection(client, config)
    recorded = recorded_fingerprint(collection.metadata if collection is not None else None)
    fingerprint = {
        **_manifest_fields(local.manifest),
        "content_digest": recorded.get("content_digest"),
    }
    collection = check_collection(client, config, fingerprint, full=True)
    with server_errors(config):
        difference = compare_collections(local.chroma_collection(), collection)
    if difference:
        raise IntegrityError(
            f"collection {config.collection!r} on {config.server_url} does not hold "
            f"{local.snapshot_dir}: {difference}; publish this snapshot under a new "
            "index.collection"
        )
    return fingerprint


def compare_collections(local: Any, remote: Any, batch_size: int = READ_BATCH) -> str | None:
    """The first difference between two collections' records, or None if they hold the same.

    Ids, texts and metadata must be equal; embeddings equal within ``EMBEDDING_TOLERANCE``.
    """
    if local.count() != remote.count():
        return f"{remote.count()} records, the snapshot has {local.count()}"
    for batch in iter_records(local, batch_size):
        theirs = remote.get(ids=batch["ids"], include=["documents", "metadatas", "embeddings"])
        position = {identifier: i for i, identifier in enumerate(theirs["ids"])}
        for i, identifier in enumerate(batch["ids"]):
            j = position.get(identifier)
            if j is None:
                return f"record {identifier} is missing"
            if (theirs["documents"][j] or "") != (batch["documents"][i] or ""):
                return f"record {identifier} has a different text"
            if (theirs["metadatas"][j] or {}) != (batch["metadatas"][i] or {}):
                return f"record {identifier} has different metadata"
            if not np.allclose(
                np.asarray(theirs["embeddings"][j], dtype=np.float32),
                np.asarray(batch["embeddings"][i], dtype=np.float32),
                rtol=0,
                atol=EMBEDDING_TOLERANCE,
            ):
                return f"record {identifier} has a different embedding"
    return None


def stage_server_snapshot(
    config: RagConfig, snapshot_dir: str | Path, out_dir: str | Path
) -> dict[str, Any]:
    """Write the folder a server-mode model ships for ``snapshot_dir``; return its manifest.

    The collection ``config.index`` names must already hold the snapshot (``publish_snapshot``);
    that is checked record by record (``check_published``) before anything is written.

    Raises:
        IndexNotFoundError: the snapshot or the collection is missing.
        IndexServerError: the server cannot be reached.
        IntegrityError: the collection does not hold this snapshot.
    """
    snapshot, out = Path(snapshot_dir), Path(out_dir)
    check_snapshot_target(out)
    local = ChromaIndex.open(snapshot)
    client = connect(config.index)
    try:
        fingerprint = check_published(client, config.index, local)
    finally:
        client.close()
        local.close()
    out.mkdir(parents=True)
    if config.retrieval.mode != "dense":
        shutil.copytree(snapshot / BM25_DIR, out / BM25_DIR)
    if (snapshot / SENTENCES_DIR).is_dir():
        shutil.copytree(snapshot / SENTENCES_DIR, out / SENTENCES_DIR)
    if (snapshot / DOCUMENTS_FILE).is_file():  # what `rag-model diff` compares
        shutil.copyfile(snapshot / DOCUMENTS_FILE, out / DOCUMENTS_FILE)
    return write_manifest(out, location=LOCATION_SERVER, **fingerprint)


def _manifest_fields(manifest: dict[str, Any]) -> dict[str, Any]:
    return {field: manifest[field] for field in FINGERPRINT_FIELDS if field != "content_digest"}


def _result(
    config: IndexConfig, fingerprint: dict[str, Any], started: float, reused: bool
) -> PublishResult:
    return PublishResult(
        server_url=str(config.server_url),
        collection=str(config.collection),
        chunk_count=int(fingerprint["chunk_count"]),
        content_digest=str(fingerprint["content_digest"]),
        seconds=time.perf_counter() - started,
        reused=reused,
    )
