"""Shared fixtures for the rag_model tests: a small corpus, a hash-embedder config, snapshots."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from rag_model.build import BuildResult, build_snapshot
from rag_model.config import RagConfig

# Five short documents, each about one topic, so the right hit is unambiguous.
CORPUS: dict[str, str] = {
    "oxygen.md": (
        "# Oxygen\n\nOxygen is a chemical element with the symbol O. "
        "Animals breathe oxygen to stay alive.\n"
    ),
    "iron.txt": "Iron is a metal used to make steel. Iron rusts when it meets water and air.\n",
    "history/bridge.txt": (
        "Brunel built the suspension bridge in 1864. The bridge spans the Avon gorge.\n"
    ),
    "history/normans.md": (
        "# Normans\n\nThe Normans conquered England in 1066. "
        "William the Conqueror was crowned king of England.\n"
    ),
    "music/violin.txt": (
        "The violin is a string instrument. It is played with a bow strung with horsehair.\n"
    ),
}


def write_files(root: Path, files: Mapping[str, str | bytes]) -> Path:
    """Write ``{relative path: content}`` under ``root`` (creating folders); return ``root``."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def hash_config() -> RagConfig:
    """The fast test config: hash embedder, echo generator, other settings default."""
    return RagConfig.from_dict(
        {"embedding": {"model": "hash-embedder"}, "generation": {"generator": "echo"}}
    )


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """A fresh folder holding CORPUS."""
    return write_files(tmp_path / "corpus", CORPUS)


@pytest.fixture(scope="module")
def hash_snapshot(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    """A snapshot of CORPUS built once per module with the hash embedder (read-only for tests)."""
    root = tmp_path_factory.mktemp("hash-snapshot")
    config = RagConfig.from_dict(
        {"embedding": {"model": "hash-embedder"}, "generation": {"generator": "echo"}}
    )
    return build_snapshot(config, write_files(root / "corpus", CORPUS), root / "snapshot")


@pytest.fixture
def make_files():
    """``make_files(root, {relative path: text or bytes})``: write files, return ``root``."""
    return write_files
