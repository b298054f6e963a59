"""The MLflow model: log, load, predict; refuse corrupted artifacts; load offline elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from rag_model.build import build_snapshot
from rag_model.config import RagConfig
from rag_model.errors import IntegrityError
from rag_model.offline import OFFLINE_DEFAULTS
from rag_model.packaging.log import log_rag_model
from tests.conftest import PROJECT, SAMPLE_CORPUS, RegisteredModel

pytestmark = pytest.mark.integration


@pytest.fixture
def fake_model_uri(tracking_store: str, fake_config: RagConfig, tmp_path: Path) -> str:
    built = build_snapshot(fake_config, SAMPLE_CORPUS, tmp_path / "snapshot")
    with mlflow.start_run():
        return log_rag_model(fake_config, built.snapshot_dir).model_uri


def test_round_trip_keeps_config_signature_and_answers(
    fake_model_uri: str, fake_config: RagConfig
) -> None:
    model = mlflow.pyfunc.load_model(fake_model_uri)
    assert model.model_config == fake_config.to_dict()
    assert model.metadata.metadata["chunk_count"] > 100
    params = {p.name: p.default for p in model.metadata.get_params_schema().params}
    # k: None, so a load-time model_config override of retrieval.k is what predict uses
    assert params == {"k": None, "filter": "", "include_sources": True}
    rows = model.predict(
        pd.DataFrame({"question": ["Who were the Normans?", "What is oxygen?"]}),
        params={"k": 2, "filter": '{"title": "Oxygen"}'},
    )
    assert [set(row) for row in rows] == [{"answer", "citations", "sources"}] * 2
    assert all(len(row["sources"]) == 2 for row in rows)
    assert all(json.loads(s["metadata"])["title"] == "Oxygen" for r in rows for s in r["sources"])


def test_logging_refuses_a_corrupted_snapshot(
    tracking_store: str, fake_config: RagConfig, tmp_path: Path
) -> None:
    built = build_snapshot(fake_config, SAMPLE_CORPUS, tmp_path / "snapshot")
    sqlite = built.snapshot_dir / "chroma" / "chroma.sqlite3"
    sqlite.write_bytes(sqlite.read_bytes()[:-1])
    with mlflow.start_run(), pytest.raises(IntegrityError, match="chroma/chroma.sqlite3"):
        log_rag_model(fake_config, built.snapshot_dir)


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_loading_refuses_an_altered_index_file(fake_model_uri: str, tmp_path: Path) -> None:
    local = Path(mlflow.artifacts.download_artifacts(fake_model_uri, dst_path=str(tmp_path)))
    (index,) = (local / "artifacts").iterdir()
    _flip_one_byte(index / "chroma" / "chroma.sqlite3")
    with pytest.raises(IntegrityError, match="file chroma/chroma.sqlite3 has sha256"):
        mlflow.pyfunc.load_model(str(local))


def test_loading_refuses_an_altered_embedder_file(
    minilm_model: RegisteredModel, tmp_path: Path
) -> None:
    minilm_model.activate()
    local = Path(
        mlflow.artifacts.download_artifacts(minilm_model.model_uri, dst_path=str(tmp_path))
    )
    _flip_one_byte(local / "artifacts" / "embedder" / "tokenizer.json")
    with pytest.raises(IntegrityError, match="file tokenizer.json has sha256"):
        mlflow.pyfunc.load_model(str(local))


def test_registered_model_loads_in_a_fresh_offline_process(minilm_model: RegisteredModel) -> None:
    script = (
        "import json, mlflow, pandas as pd\n"
        "m = mlflow.pyfunc.load_model('models:/rag-model@production')\n"
        "rows = m.predict(pd.DataFrame({'question': ['Who was the duke in the battle of "
        "Hastings?']}), params={'k': 3})\n"
        "import os; assert os.environ['HF_HUB_OFFLINE'] == '1'  # set by the model's code\n"
        "print(json.dumps(rows))\n"
    )
    # any attempt to reach the network goes to a closed local port and fails; the offline
    # switches are left out: loading the model must set them itself
    env = {
        **{name: value for name, value in os.environ.items() if name not in OFFLINE_DEFAULTS},
        "MLFLOW_TRACKING_URI": minilm_model.tracking_uri,
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "",
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["sources"][0]["document_id"].startswith("Normans-")
    assert "Hastings" in row["answer"]
    assert row["answer"].endswith("[1]") or "[1]" in row["answer"]
    assert str(PROJECT) not in done.stderr  # nothing read from the checkout
