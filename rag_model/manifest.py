"""Artifact manifests: each file's size and sha256, written at build, checked at load.

Compatibility rule: ``format_version`` is ``MAJOR.MINOR`` of the artifact layout. A rag-model
reads every manifest of its own MAJOR, older or newer MINOR: a minor version only adds fields,
which a reader checks when it knows them and ignores otherwise. A change that an older reader
would misread (a moved or renamed file, a new index format) bumps MAJOR, and a manifest of
another MAJOR is refused with both rag-model versions and what to do. Manifests written before
the format had a minor (``format_version: 1``) read as 1.0.

Format history: 1.0 file digests; 1.1 adds file sizes (a truncated file is told from an altered
one), the manifest's own sha256 (an edited manifest is told from an edited file) and, in a
logged model's index manifest, the sha256 of the model's config; 1.2 adds a snapshot's
``documents.json`` (each document's sha256 and chunk ids, ``rag_model.corpus_table``), a file
like any other in the digests; snapshots without it still load, and diff without it says so.

The manifest is a checksum list, not a signature: it catches corruption, truncation, partial
copies and edits by mistake, not someone who rewrites the manifest on purpose.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rag_model.errors import IntegrityError
from rag_model.version import __version__

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = "1.2"
FORMAT_MAJOR = 1
SELF_DIGEST = "manifest_sha256"


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(root: Path) -> list[tuple[str, Path]]:
    return [
        (relative, path)
        for path in sorted(p for p in root.rglob("*") if p.is_file())
        if (relative := path.relative_to(root).as_posix()) != MANIFEST_NAME
    ]


def file_digests(root: Path) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every file under ``root`` except the manifest."""
    return {relative: sha256_file(path) for relative, path in _files(root)}


def file_sizes(root: Path) -> dict[str, int]:
    """``{relative posix path: bytes}`` of every file under ``root`` except the manifest."""
    return {relative: path.stat().st_size for relative, path in _files(root)}


def config_digest(config: Mapping[str, Any]) -> str:
    """The sha256 of a config's canonical JSON: equal configs give equal digests."""
    return _canonical_digest(config)


def _canonical_digest(data: Mapping[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _self_digest(manifest: Mapping[str, Any]) -> str:
    return _canonical_digest({k: v for k, v in manifest.items() if k != SELF_DIGEST})


def _write(root: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    manifest = {k: v for k, v in manifest.items() if k != SELF_DIGEST}
    manifest[SELF_DIGEST] = _self_digest(manifest)
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def write_manifest(root: Path, **fields: Any) -> dict[str, Any]:
    """Write ``root/manifest.json`` with the file sizes, digests and ``fields``; return it."""
    return _write(
        root,
        {
            "format_version": FORMAT_VERSION,
            "rag_model_version": __version__,
            **fields,
            "files": file_digests(root),
            "sizes": file_sizes(root),
        },
    )


def amend_manifest(root: Path, **fields: Any) -> dict[str, Any]:
    """Add ``fields`` to the (already verified) manifest of ``root`` without re-hashing files."""
    return _write(root, {**read_manifest(root), **fields})


def parse_format(value: Any) -> tuple[int, int] | None:
    """``(major, minor)`` of a ``format_version`` (``1`` reads as 1.0), or None if malformed."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value, 0
    if isinstance(value, str):
        major, dot, minor = value.partition(".")
        if major.isdigit() and dot and minor.isdigit():
            return int(major), int(minor)
    return None


def read_manifest(root: Path) -> dict[str, Any]:
    """Read and check ``root/manifest.json`` (format, own digest) without hashing the files."""
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise IntegrityError(
            f"no {MANIFEST_NAME} in {root}: not a rag-model artifact, or it was truncated; "
            "rebuild the index and log the model again"
        )
    try:
        manifest = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IntegrityError(
            f"{path} is not valid JSON ({exc}); the manifest is corrupted: log the model again"
        ) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise IntegrityError(f"{path} has no 'files' table; the artifact is corrupted")
    version = parse_format(manifest.get("format_version"))
    writer = manifest.get("rag_model_version", "?")
    if version is None or version[0] != FORMAT_MAJOR:
        shown = manifest.get("format_version")
        raise IntegrityError(
            f"{path}: artifact format {shown} written by rag-model {writer}; this rag-model "
            f"{__version__} reads format {FORMAT_MAJOR}.x: rebuild the version with rag-model "
            f"{__version__} ('mlflow run . -e main'), or install rag-model {writer} to load it"
        )
    if version >= (1, 1):
        recorded, actual = manifest.get(SELF_DIGEST), _self_digest(manifest)
        if recorded != actual:
            raise IntegrityError(
                f"{path}: the manifest's own sha256 is {actual}, it records {recorded}: the "
                "manifest was edited or damaged; log the model again"
            )
    return manifest


def verify_manifest(root: Path) -> dict[str, Any]:
    """Check every file under ``root`` against its manifest; return the manifest.

    Raises:
        IntegrityError: naming the first missing, truncated, altered or unexpected file.
    """
    manifest = read_manifest(root)
    expected: dict[str, str] = manifest["files"]
    expected_sizes: dict[str, int] = manifest.get("sizes", {})
    sizes = file_sizes(root)
    for name in expected:
        if name not in sizes:
            raise IntegrityError(
                f"{root}: file {name} listed in the manifest is missing; log the model again"
            )
        if name in expected_sizes and sizes[name] != expected_sizes[name]:
            raise IntegrityError(
                f"{root}: file {name} is {sizes[name]} bytes, the manifest says "
                f"{expected_sizes[name]}: it was truncated or altered; log the model again"
            )
    extra = sorted(set(sizes) - set(expected))
    if extra:
        raise IntegrityError(
            f"{root}: unexpected file(s) not in the manifest: {', '.join(extra)}; remove them "
            "or log the model again"
        )
    for name, digest in expected.items():
        actual = sha256_file(root / name)
        if actual != digest:
            raise IntegrityError(
                f"{root}: file {name} has sha256 {actual}, the manifest says {digest}: it was "
                "altered; log the model again"
            )
    return manifest
