"""A version prepared once per host (serving.prepare): verified there, opened without MLflow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rag_model.errors import IntegrityError
from serving.model_holder import load_served_model
from serving.prepare import main, open_prepared
from serving.settings import Settings
from tests.conftest import PROJECT, RegisteredModel

pytestmark = pytest.mark.integration
URI = "models:/rag-model@production"


def prepared(model: RegisteredModel, folder: Path, uri: str = URI) -> tuple[int, dict]:
    model.activate()
    result = folder / "version.json"
    status = main(["prepare", uri, str(result)])
    return status, json.loads(result.read_text())


def test_the_prepared_version_is_the_alias_target_and_answers(
    fake_registered_model: RegisteredModel, tmp_path: Path
) -> None:
    status, result = prepared(fake_registered_model, tmp_path)

    assert status == 0
    assert {k: result[k] for k in ("ok", "uri", "name", "version", "alias")} == {
        "ok": True,
        "uri": URI,
        "name": "rag-model",
        "version": fake_registered_model.version,
        "alias": "production",
    }
    answer = open_prepared(result).answer("Who built the bridge?")
    assert answer.sources


def test_a_worker_opens_the_prepared_version_without_importing_mlflow(
    fake_registered_model: RegisteredModel, tmp_path: Path
) -> None:
    _, result = prepared(fake_registered_model, tmp_path)
    result_file = tmp_path / "version.json"
    code = (
        "import json, sys\n"
        "from serving.model_holder import load_served_model\n"
        "from serving.settings import Settings\n"
        f"settings = Settings(model_uri={URI!r}, prepared_file={str(result_file)!r})\n"
        "model = load_served_model(settings.model_uri, settings)\n"
        "heavy = sorted({'mlflow', 'pandas', 'sqlalchemy', 'torch'} & set(sys.modules))\n"
        "found = {'heavy': heavy, 'version': model.version, 'prepared': model.prepared}\n"
        "print(json.dumps(found))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, check=True
    )

    last = json.loads(completed.stdout.strip().splitlines()[-1])
    assert last == {"heavy": [], "version": result["version"], "prepared": True}


def test_a_failed_preparation_is_reported_and_the_worker_loads_alone(
    fake_registered_model: RegisteredModel, tmp_path: Path
) -> None:
    status, result = prepared(fake_registered_model, tmp_path, "models:/rag-model@nowhere")
    assert status == 1 and result["ok"] is False
    assert "has no alias 'nowhere'" in result["error"]

    settings = Settings(model_uri=URI, prepared_file=str(tmp_path / "version.json"))
    # the record is for another URI's attempt: the worker falls back and loads URI itself
    (tmp_path / "version.json").write_text(json.dumps({**result, "uri": URI}))
    model = load_served_model(URI, settings)

    assert model.prepared is False and model.version == fake_registered_model.version


def test_a_version_altered_on_disk_is_refused_by_the_preparation(
    fake_registered_model: RegisteredModel, tmp_path: Path
) -> None:
    _, result = prepared(fake_registered_model, tmp_path)
    manifest = Path(result["model_dir"]) / "artifacts" / "index" / "manifest.json"
    chroma = next(p for p in (manifest.parent / "chroma").rglob("*") if p.is_file())
    original = chroma.read_bytes()
    try:
        chroma.write_bytes(original + b"tampered")
        status, again = prepared(fake_registered_model, tmp_path / "again")
    finally:
        chroma.write_bytes(original)

    assert status == 1 and again["error"].startswith(IntegrityError.__name__)
