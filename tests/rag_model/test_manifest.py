"""Tests for artifact manifests: written at build, every file's sha256 checked at load."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from rag_model import __version__
from rag_model.errors import IntegrityError
from rag_model.manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    file_digests,
    read_manifest,
    verify_manifest,
    write_manifest,
)


@pytest.fixture
def artifact(tmp_path: Path, make_files) -> Path:
    root = make_files(
        tmp_path / "artifact",
        {"config.json": '{"k": 4}\n', "chroma/data.bin": bytes(range(256)), "chroma/empty": b""},
    )
    write_manifest(root, chunk_count=3, embedder="hash-embedder")
    return root


def test_write_manifest_records_fields_and_every_file_digest(tmp_path: Path, make_files) -> None:
    root = make_files(tmp_path, {"a.txt": "alpha", "sub/b.bin": b"\x00\x01"})

    manifest = write_manifest(root, chunk_count=3)

    assert manifest == {
        "format_version": FORMAT_VERSION,
        "rag_model_version": __version__,
        "chunk_count": 3,
        "files": {
            "a.txt": hashlib.sha256(b"alpha").hexdigest(),
            "sub/b.bin": hashlib.sha256(b"\x00\x01").hexdigest(),
        },
    }
    assert json.loads((root / MANIFEST_NAME).read_text()) == manifest


def test_file_digests_leave_out_the_manifest(artifact: Path) -> None:
    assert set(file_digests(artifact)) == {"config.json", "chroma/data.bin", "chroma/empty"}


def test_verify_an_untouched_artifact(artifact: Path) -> None:
    manifest = verify_manifest(artifact)

    assert manifest["chunk_count"] == 3
    assert manifest["embedder"] == "hash-embedder"
    assert manifest == read_manifest(artifact)


def test_one_altered_byte_is_refused_naming_the_file(artifact: Path) -> None:
    data = bytearray((artifact / "chroma/data.bin").read_bytes())
    data[100] ^= 0xFF
    (artifact / "chroma/data.bin").write_bytes(bytes(data))

    with pytest.raises(
        IntegrityError,
        match=re.escape(f"{artifact}: file chroma/data.bin has sha256 ")
        + r"[0-9a-f]{12}…, the manifest says [0-9a-f]{12}…: it was altered or truncated",
    ):
        verify_manifest(artifact)


def test_a_truncated_file_is_refused(artifact: Path) -> None:
    (artifact / "chroma/data.bin").write_bytes(bytes(range(128)))

    with pytest.raises(IntegrityError, match="file chroma/data.bin has sha256"):
        verify_manifest(artifact)


def test_a_removed_file_is_refused_as_missing(artifact: Path) -> None:
    (artifact / "config.json").unlink()

    with pytest.raises(
        IntegrityError,
        match=re.escape(f"{artifact}: file config.json listed in the manifest is missing"),
    ):
        verify_manifest(artifact)


def test_an_extra_file_is_refused_as_unexpected(artifact: Path) -> None:
    (artifact / "zzz.txt").write_text("smuggled")
    (artifact / "chroma/extra.bin").write_bytes(b"x")

    with pytest.raises(
        IntegrityError,
        match=re.escape(
            f"{artifact}: unexpected file(s) not in the manifest: chroma/extra.bin, zzz.txt"
        ),
    ):
        verify_manifest(artifact)


def test_a_folder_without_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha")

    with pytest.raises(
        IntegrityError,
        match=re.escape(f"no manifest.json in {tmp_path}: not a rag-model artifact"),
    ):
        verify_manifest(tmp_path)


def test_another_format_version_is_refused(artifact: Path) -> None:
    path = artifact / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    manifest["format_version"] = 2
    path.write_text(json.dumps(manifest))

    with pytest.raises(
        IntegrityError,
        match=re.escape(
            f"{path} has format_version 2 (written by rag-model {__version__}); "
            f"this rag-model reads format {FORMAT_VERSION}"
        ),
    ):
        read_manifest(artifact)


def test_a_manifest_that_is_not_json_is_refused(artifact: Path) -> None:
    (artifact / MANIFEST_NAME).write_text("{not json")

    with pytest.raises(
        IntegrityError, match=re.escape(f"{artifact / MANIFEST_NAME} is not valid JSON")
    ):
        verify_manifest(artifact)


def test_a_manifest_without_files_table_is_refused(artifact: Path) -> None:
    (artifact / MANIFEST_NAME).write_text(json.dumps({"format_version": FORMAT_VERSION}))

    with pytest.raises(
        IntegrityError, match=re.escape(f"{artifact / MANIFEST_NAME} has no 'files' table")
    ):
        verify_manifest(artifact)
