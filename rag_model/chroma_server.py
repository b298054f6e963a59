"""Chroma in client/server mode: connect to a ``chroma run`` server, query a published collection.

A server-mode model version ships no Chroma files. Its snapshot folder holds the manifest (and
the BM25 index and sentence vectors when it uses them); the vectors and texts live in a
collection on a Chroma server, published from a built snapshot by ``rag_model.publish``. The
collection's metadata records the same fingerprint as the manifest::

    rag_model:corpus_fingerprint   rag_model:chunk_count   rag_model:embedding_dimension
    rag_model:embedder             rag_model:space         rag_model:content_digest

Loading connects, checks the collection exists, that its fingerprint and record count match the
manifest and (``index.server_verify: digest``, the default) recomputes the content digest from
every record, refusing any difference with a message naming the server, the collection and what
differs. Queries then go through the ``ChromaIndex`` interface unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from rag_model.config import IndexConfig
from rag_model.errors import IndexNotFoundError, IndexServerError, IntegrityError
from rag_model.index import ChromaIndex
from rag_model.manifest import MANIFEST_NAME, verify_manifest

LOCATION_SERVER = "server"
METADATA_PREFIX = "rag_model:"
# what the manifest and the collection's metadata must agree on
FINGERPRINT_FIELDS = (
    "corpus_fingerprint",
    "chunk_count",
    "embedding_dimension",
    "embedder",
    "space",
    "content_digest",
)
READ_BATCH = 1000  # records per request when a whole collection is read (digest, publish)
_DIGEST_MODULUS = 1 << 256


def connect(config: IndexConfig) -> Any:
    """A ``chromadb.HttpClient`` for ``config.server_url``, with the token ``token_env`` names.

    Raises:
        IndexServerError: the token variable is unset, or the server cannot be reached.
    """
    url = str(config.server_url)
    settings: dict[str, Any] = {"anonymized_telemetry": False}
    if config.token_env:
        token = os.environ.get(config.token_env)
        if not token:
            raise IndexServerError(
                f"index.token_env names {config.token_env}, which is not set; export the "
                f"Chroma server's token as {config.token_env}"
            )
        # Chroma's own client auth: sent as "Authorization: Bearer <token>"
        settings.update(
            chroma_client_auth_provider="chromadb.auth.token_authn.TokenAuthClientProvider",
            chroma_client_auth_credentials=token,
        )
    import chromadb
    from chromadb.config import Settings

    parts = urlsplit(url)
    try:
        return chromadb.HttpClient(
            host=str(parts.hostname),
            port=int(parts.port or 0),
            ssl=parts.scheme == "https",
            settings=Settings(**settings),
        )
    except Exception as exc:  # chromadb says "Could not connect ..." as a bare ValueError
        raise IndexServerError(
            f"cannot connect to the Chroma server at {url}: {exc} Start it (chroma run --path "
            "DIR --host HOST --port PORT) or fix index.server_url"
        ) from None


@contextmanager
def server_errors(config: IndexConfig) -> Iterator[None]:
    """Turn a lost connection or a failing server into one ``IndexServerError`` line."""
    import httpx
    from chromadb.errors import ChromaError

    try:
        yield
    except (httpx.TransportError, ChromaError) as exc:
        raise IndexServerError(
            f"the Chroma server at {config.server_url} (collection {config.collection!r}) "
            f"failed: {type(exc).__name__}: {exc}"
        ) from None


def iter_records(collection: Any, batch_size: int = READ_BATCH) -> Iterator[dict[str, Any]]:
    """Every record of ``collection`` (ids, documents, metadatas, embeddings), batch by batch."""
    for offset in range(0, collection.count(), batch_size):
        batch = collection.get(
            limit=batch_size, offset=offset, include=["documents", "metadatas", "embeddings"]
        )
        if not batch["ids"]:
            break
        yield batch


def record_digest(identifier: str, document: str | None, metadata: Any, embedding: Any) -> int:
    """The sha256 of one record (as an integer): id, text, metadata and float32 vector."""
    text = json.dumps(
        [identifier, document or "", dict(metadata or {})],
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    vector = np.asarray(embedding, dtype="<f4").tobytes()
    return int.from_bytes(hashlib.sha256(text.encode() + b"\0" + vector).digest(), "big")


def collection_digest(collection: Any, batch_size: int = READ_BATCH) -> str:
    """The content digest of a collection: the sum of its records' sha256 modulo 2**256.

    A sum does not depend on the order Chroma returns records in, so a collection of any size
    is read batch by batch in constant memory, locally or over HTTP. It detects records changed,
    added or removed by accident; it is no defence against someone who can write to the server
    (use the server's auth for that).
    """
    total = 0
    for batch in iter_records(collection, batch_size):
        total += sum(
            record_digest(identifier, document, metadata, embedding)
            for identifier, document, metadata, embedding in zip(
                batch["ids"],
                batch["documents"],
                batch["metadatas"],
                batch["embeddings"],
                strict=True,
            )
        )
    return f"{total % _DIGEST_MODULUS:064x}"


def fingerprint_metadata(fingerprint: Mapping[str, Any]) -> dict[str, Any]:
    """Collection metadata recording ``fingerprint`` (the FINGERPRINT_FIELDS of a manifest)."""
    return {f"{METADATA_PREFIX}{field}": fingerprint[field] for field in FINGERPRINT_FIELDS}


def recorded_fingerprint(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """The fingerprint fields a collection's metadata records (empty if none)."""
    metadata = metadata or {}
    return {
        field: metadata[f"{METADATA_PREFIX}{field}"]
        for field in FINGERPRINT_FIELDS
        if f"{METADATA_PREFIX}{field}" in metadata
    }


def get_collection(client: Any, config: IndexConfig) -> Any | None:
    """The collection ``config`` names, or None if the server has no such collection."""
    from chromadb.errors import NotFoundError

    with server_errors(config):
        try:
            return client.get_collection(str(config.collection), embedding_function=None)
        except NotFoundError:
            return None


def check_collection(
    client: Any, config: IndexConfig, manifest: Mapping[str, Any], full: bool
) -> Any:
    """The collection ``config`` names, checked against ``manifest``; ``full`` re-reads it all.

    Raises:
        IndexNotFoundError: the server has no such collection.
        IntegrityError: its fingerprint, record count or content digest differ.
    """
    where = f"collection {config.collection!r} on the Chroma server at {config.server_url}"
    collection = get_collection(client, config)
    if collection is None:
        raise IndexNotFoundError(
            f"no {where}; publish the model's snapshot there ('rag-model publish --snapshot DIR "
            "--config CONFIG') or fix index.collection"
        )
    recorded = recorded_fingerprint(collection.metadata)
    if not recorded:
        raise IntegrityError(
            f"{where} has no rag-model fingerprint: it was not published by rag-model or its "
            "publishing did not finish; publish the snapshot again"
        )
    differences = [
        f"{field} {_short(recorded.get(field))} (manifest: {_short(manifest.get(field))})"
        for field in FINGERPRINT_FIELDS
        if recorded.get(field) != manifest.get(field)
    ]
    if differences:
        raise IntegrityError(
            f"{where} does not match the model's manifest: {'; '.join(differences)}; point "
            "index.collection at the collection this model was published to"
        )
    with server_errors(config):
        count = collection.count()
        if count != manifest["chunk_count"]:
            raise IntegrityError(
                f"{where} holds {count} records, the manifest says {manifest['chunk_count']}: "
                "records were added or deleted after publishing; publish the snapshot again"
            )
        if full:
            digest = collection_digest(collection)
            if digest != manifest["content_digest"]:
                raise IntegrityError(
                    f"{where} has content digest {_short(digest)}, the manifest says "
                    f"{_short(manifest['content_digest'])}: a record was changed after "
                    "publishing; publish the snapshot again"
                )
    return collection


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) > 16:
        return repr(value[:12] + "…")
    return repr(value)


class RemoteChromaIndex(ChromaIndex):
    """A published collection on a Chroma server, behind the ``ChromaIndex`` interface.

    Example:
        >>> index = RemoteChromaIndex.open("model/artifacts/index", config.index)  # checked
        >>> index.query(vector, k=4, where={"title": "Oxygen"})
    """

    def __init__(
        self, snapshot_dir: Path, manifest: Mapping[str, Any], config: IndexConfig
    ) -> None:
        super().__init__(snapshot_dir, manifest)
        self.config = config

    @classmethod
    def open_remote(cls, snapshot_dir: str | Path, config: IndexConfig) -> RemoteChromaIndex:
        """Verify the shipped files, then connect and check the server's collection.

        Raises:
            IndexNotFoundError: no manifest, or no such collection on the server.
            IndexServerError: the server cannot be reached.
            IntegrityError: a shipped file or the collection does not match the manifest.
        """
        snapshot = Path(snapshot_dir)
        if not (snapshot / MANIFEST_NAME).is_file():
            raise IndexNotFoundError(f"no {MANIFEST_NAME} in {snapshot}: not a rag-model index")
        manifest = verify_manifest(snapshot)
        if manifest.get("location") != LOCATION_SERVER:
            raise IntegrityError(
                f"{snapshot} is a bundled snapshot but index.location is 'server'; publish it "
                "('rag-model publish') and log the model with the server config"
            )
        index = cls(snapshot, manifest, config)
        index.warm_up()  # checked now, at load, rather than on the first question
        return index

    def warm_up(self) -> None:
        """Connect (once per process) and check the collection; the first time, in full."""
        if self._collection is not None and self._pid == os.getpid():
            return
        client = connect(self.config)
        try:
            # a forked worker re-checks only the fingerprint: the parent read every record
            collection = check_collection(
                client,
                self.config,
                self.manifest,
                full=self.config.server_verify == "digest" and self._pid is None,
            )
        except BaseException:
            client.close()
            raise
        self._client, self._collection, self._pid = client, collection, os.getpid()

    def query_many(
        self, embeddings: np.ndarray, k: int, where: Mapping[str, Any] | None = None
    ) -> list[list[Any]]:
        """``ChromaIndex.query_many`` on the server; a failing server raises IndexServerError."""
        with server_errors(self.config):
            return super().query_many(embeddings, k, where)

    def get(self, ids: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        """``ChromaIndex.get`` on the server (texts are cached per process the same way)."""
        with server_errors(self.config):
            return super().get(ids)

    def ids_matching(self, where: Mapping[str, Any]) -> set[str]:
        """``ChromaIndex.ids_matching`` on the server."""
        with server_errors(self.config):
            return super().ids_matching(where)

    def close(self) -> None:
        """Release the HTTP client (there is no host copy to let go of)."""
        if self._client is not None and self._pid == os.getpid():
            self._client.close()
        self._client = self._collection = None


def open_index(config: IndexConfig, snapshot_dir: str | Path, verify: bool = True) -> ChromaIndex:
    """Open the index ``config.location`` says: the bundled snapshot, or a Chroma server.

    It lives here, not in ``rag_model.index``, because only this module knows both kinds.
    ``verify=False`` (a bundled snapshot this host has just verified) reads the manifest and
    checks its own digest but does not hash every file again.

    Raises:
        IndexNotFoundError, IndexServerError, IntegrityError: see ``ChromaIndex.open`` and
            ``RemoteChromaIndex.open_remote``.
    """
    if config.location == LOCATION_SERVER:
        return RemoteChromaIndex.open_remote(snapshot_dir, config)
    return ChromaIndex.open(snapshot_dir, verify=verify)
