"""Importing the core leaves the environment alone; programs set the offline switches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag_model.offline import OFFLINE_DEFAULTS, apply_offline_defaults

PROJECT = Path(__file__).resolve().parents[2]


def _environ_changes(code: str) -> dict[str, list[str | None]]:
    """What running ``code`` in a fresh interpreter, without the switches, did to os.environ."""
    script = (
        "import json, os\n"
        "before = dict(os.environ)\n"
        f"{code}\n"
        "after = dict(os.environ)\n"
        "print(json.dumps({name: [before.get(name), after.get(name)] for name in "
        "set(before) | set(after) if before.get(name) != after.get(name)}))\n"
    )
    env = {name: value for name, value in os.environ.items() if name not in OFFLINE_DEFAULTS}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT,
        env={**env, "PYTHONPATH": str(PROJECT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_rag_model_leaves_the_environment_unchanged() -> None:
    code = "import rag_model, rag_model.pipeline, rag_model.build, rag_model.offline"
    assert _environ_changes(code) == {}


def test_an_entry_point_package_sets_the_offline_switches() -> None:
    changes = _environ_changes("import experiments")
    assert {name: new for name, (_, new) in changes.items()} == OFFLINE_DEFAULTS


def test_apply_offline_defaults_keeps_a_value_the_user_chose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in OFFLINE_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    apply_offline_defaults()
    assert os.environ["HF_HUB_OFFLINE"] == "0"
    assert os.environ["RAGAS_DO_NOT_TRACK"] == "true"
