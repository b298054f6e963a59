"""The pure core imports neither the MLflow/Flask layers nor, eagerly, Chroma or torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
CORE_MODULES = (
    "rag_model",
    "rag_model.pipeline",
    "rag_model.build",
    "rag_model.index",
    "rag_model.chroma_server",
    "rag_model.publish",
    "rag_model.ingestion",
    "rag_model.chunking",
    "rag_model.embedders",
    "rag_model.generators",
    "rag_model.manifest",
)
HEAVY = ("mlflow", "flask", "chromadb", "torch", "sentence_transformers", "pyspark")
# the Spark layer imports pyspark only inside the functions that run Spark
SPARK_MODULES = ("rag_spark", "rag_spark.session", "rag_spark.scoring", "rag_spark.indexing")


def _modules_loaded_by(modules: tuple[str, ...]) -> set[str]:
    """The top-level modules loaded in a fresh interpreter after importing ``modules``."""
    code = (
        f"import {', '.join(modules)}; import json, sys; "
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return set(json.loads(completed.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def loaded_modules() -> set[str]:
    """The top-level modules loaded in a fresh interpreter after importing the core."""
    return _modules_loaded_by(CORE_MODULES)


def test_the_core_was_imported(loaded_modules: set[str]) -> None:
    assert {"rag_model", "numpy", "pydantic"} <= loaded_modules


@pytest.mark.parametrize("module", HEAVY)
def test_the_core_does_not_import(loaded_modules: set[str], module: str) -> None:
    assert module not in loaded_modules


def test_the_spark_layer_imports_pyspark_only_when_it_runs_spark() -> None:
    loaded = _modules_loaded_by(SPARK_MODULES)
    assert "rag_spark" in loaded
    assert "pyspark" not in loaded and "py4j" not in loaded
