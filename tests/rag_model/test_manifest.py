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
    SELF_DIGEST,
    amend_manifest,
    config_digest,
    file_digests,
    parse_format,
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

    body = {
        "format_version": FORMAT_VERSION,
        "rag_model_version": __version__,
        "chunk_count": 3,
        "files": {
            "a.txt": hashlib.sha256(b"alpha").hexdigest(),
            "sub/b.bin": hashlib.sha256(b"\x00\x01").hexdigest(),
        },
        "sizes": {"a.txt": 5, "sub/b.bin": 2},
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    assert manifest == {**body, SELF_DIGEST: hashlib.sha256(canonical).hexdigest()}
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
        + r"[0-9a-f]{64}, the manifest says [0-9a-f]{64}: it was altered; log the model again$",
    ):
        verify_manifest(artifact)


def test_a_truncated_file_is_refused_with_both_sizes(artifact: Path) -> None:
    (artifact / "chroma/data.bin").write_bytes(bytes(range(128)))

    with pytest.raises(
        IntegrityError,
        match=re.escape(
            f"{artifact}: file chroma/data.bin is 128 bytes, the manifest says 256: it was "
            "truncated or altered; log the model again"
        ),
    ):
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


def _rewrite(artifact: Path, **changes: object) -> Path:
    """Change manifest fields and re-hash it, as a rag-model writing them would have."""
    path = artifact / MANIFEST_NAME
    manifest = {**json.loads(path.read_text()), **changes}
    manifest.pop(SELF_DIGEST)
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    manifest[SELF_DIGEST] = hashlib.sha256(canonical).hexdigest()
    path.write_text(json.dumps(manifest))
    return path


def test_another_format_major_is_refused_with_both_versions(artifact: Path) -> None:
    path = _rewrite(artifact, format_version="2.0", rag_model_version="9.1.0")

    with pytest.raises(
        IntegrityError,
        match=re.escape(
            f"{path}: artifact format 2.0 written by rag-model 9.1.0; this rag-model "
            f"{__version__} reads format 1.x: rebuild the version with rag-model {__version__} "
            "('mlflow run . -e main'), or install rag-model 9.1.0 to load it"
        ),
    ):
        read_manifest(artifact)


@pytest.mark.parametrize("version", ["1.7", 1])
def test_a_newer_minor_and_the_first_format_are_read(artifact: Path, version: object) -> None:
    _rewrite(artifact, format_version=version, field_of_a_later_minor=True)

    assert verify_manifest(artifact)["field_of_a_later_minor"] is True


@pytest.mark.parametrize("value", ["1", "one.two", None, True, "1.x"])
def test_a_malformed_format_version_is_refused(artifact: Path, value: object) -> None:
    assert parse_format(value) is None
    _rewrite(artifact, format_version=value)

    with pytest.raises(IntegrityError, match=f"artifact format {value} written by rag-model"):
        read_manifest(artifact)


def test_an_edited_manifest_is_told_from_an_edited_file(artifact: Path) -> None:
    path = artifact / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    manifest["files"]["config.json"] = "0" * 64  # valid JSON, digest of no file
    path.write_text(json.dumps(manifest))

    with pytest.raises(
        IntegrityError,
        match=re.escape(f"{path}: the manifest's own sha256 is ")
        + r"[0-9a-f]{64}, it records [0-9a-f]{64}: the manifest was edited or damaged; "
        + "log the model again$",
    ):
        verify_manifest(artifact)


def test_amend_adds_fields_and_keeps_the_manifest_valid(artifact: Path) -> None:
    amended = amend_manifest(artifact, model_config_sha256="c" * 64)

    assert amended["model_config_sha256"] == "c" * 64
    assert verify_manifest(artifact) == amended


def test_config_digest_ignores_key_order() -> None:
    assert config_digest({"a": 1, "b": {"c": 2}}) == config_digest({"b": {"c": 2}, "a": 1})
    assert config_digest({"a": 1}) != config_digest({"a": 2})


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
