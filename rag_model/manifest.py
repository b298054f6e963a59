"""Artifact manifests: the sha256 of every file in a folder, written at build, checked at load."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from rag_model.errors import IntegrityError

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


def file_digests(root: Path) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every file under ``root`` except the manifest."""
    digests = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if relative == MANIFEST_NAME:
            continue
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digests[relative] = digest.hexdigest()
    return digests


def write_manifest(root: Path, **fields: Any) -> dict[str, Any]:
    """Write ``root/manifest.json`` with the file digests and ``fields``; return it."""
    from rag_model import __version__

    manifest = {
        "format_version": FORMAT_VERSION,
        "rag_model_version": __version__,
        **fields,
        "files": file_digests(root),
    }
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def read_manifest(root: Path) -> dict[str, Any]:
    """Read and sanity-check ``root/manifest.json`` without hashing the files."""
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise IntegrityError(
            f"no {MANIFEST_NAME} in {root}: not a rag-model artifact, or it was truncated; "
            "rebuild the index and log the model again"
        )
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IntegrityError(
            f"{path} is not valid JSON ({exc}); the artifact is corrupted"
        ) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise IntegrityError(f"{path} has no 'files' table; the artifact is corrupted")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise IntegrityError(
            f"{path} has format_version {version!r} (written by rag-model "
            f"{manifest.get('rag_model_version', '?')}); this rag-model reads format "
            f"{FORMAT_VERSION}: load it with a matching rag-model or rebuild it"
        )
    return manifest


def verify_manifest(root: Path) -> dict[str, Any]:
    """Check every file under ``root`` against its manifest; return the manifest.

    Raises:
        IntegrityError: naming the first missing, unexpected or altered file.
    """
    manifest = read_manifest(root)
    expected: dict[str, str] = manifest["files"]
    actual = file_digests(root)
    for name, digest in expected.items():
        if name not in actual:
            raise IntegrityError(f"{root}: file {name} listed in the manifest is missing")
        if actual[name] != digest:
            raise IntegrityError(
                f"{root}: file {name} has sha256 {actual[name][:12]}…, the manifest says "
                f"{digest[:12]}…: it was altered or truncated; log the model again"
            )
    extra = sorted(set(actual) - set(expected))
    if extra:
        raise IntegrityError(f"{root}: unexpected file(s) not in the manifest: {', '.join(extra)}")
    return manifest
