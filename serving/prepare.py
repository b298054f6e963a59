"""Prepare the served version once per host, beside the workers: resolve, download, verify.

``serving.prepare.main([_, URI, RESULT_FILE])`` (run by gunicorn's master as a subprocess)
resolves ``URI`` (an alias to a pinned version),
downloads the version's files, verifies every one of them and writes ``RESULT_FILE`` (JSON,
atomically): ``{"ok": true, "model_dir", "uri", "name", "version", "alias", "run_id"}``, or
``{"ok": false, "error"}``.

gunicorn's master starts it as a subprocess when it starts (serving/gunicorn.conf.py), so its
MLflow imports and registry client (about 3.5 s of CPU on the 2-core CI machine, two thirds of
a worker's start) run once, in parallel with the workers' own imports, instead of once per
worker. A worker then opens the prepared folder without importing MLflow
(``open_prepared``); if preparing failed or took longer than the worker's timeout, the worker
loads the version itself as before, and reports the same errors.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from rag_model.errors import ModelError

POLL_SECONDS = 0.05


def prepare(uri: str) -> dict[str, Any]:
    """Resolve, download and verify ``uri``; what a worker needs to open it."""
    # imported here, not at the top: workers import this module and must not load MLflow
    import mlflow.artifacts

    from rag_model.packaging.registry import resolve_model_uri
    from rag_model.packaging.version_files import verify_model_dir

    ref = resolve_model_uri(uri)
    # as mlflow.pyfunc.load_model does: a local store answers with the registry's own folder
    # (nothing copied; nothing writes there: Chroma opens the host's working copy,
    # rag_model.chroma_share), a remote one downloads into a new temporary folder that
    # outlives this process
    started = time.perf_counter()
    model_dir = Path(mlflow.artifacts.download_artifacts(ref.uri if ref else uri))
    downloaded = time.perf_counter()
    verify_model_dir(model_dir)  # every file against its manifest, once per host
    # one line each in the server's log: both steps grow with the index (minutes at 1M chunks)
    print(
        f"[rag-model] prepared {uri}: download {downloaded - started:.1f} s, verify "
        f"{time.perf_counter() - downloaded:.1f} s ({model_dir})",
        file=sys.stderr,
        flush=True,
    )
    return {
        "ok": True,
        "model_dir": str(model_dir),
        "uri": uri,
        "name": ref.name if ref else None,
        "version": ref.version if ref else None,
        "alias": ref.alias if ref else None,
        "run_id": ref.run_id if ref else None,
    }


def write_result(path: Path, result: dict[str, Any]) -> None:
    """Write ``result`` so a reader never sees half of it."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(result), encoding="utf-8")
    os.replace(partial, path)


def wait_for(path: Path, timeout: float) -> dict[str, Any] | None:
    """The prepared result once ``path`` exists, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return None
        time.sleep(POLL_SECONDS)
    return json.loads(path.read_text(encoding="utf-8"))


def open_prepared(result: dict[str, Any]) -> Any:
    """The prepared version's pipeline, opened without MLflow and without hashing again.

    Raises:
        ModelError: the result is a failure (its error is quoted).
    """
    from rag_model.packaging.version_files import open_model_dir

    if not result.get("ok"):
        raise ModelError(f"preparing the version failed: {result.get('error')}")
    return open_model_dir(Path(result["model_dir"]), verify=False)


def main(argv: list[str]) -> int:
    """``argv``: [program, URI, RESULT_FILE]; exit status 0 when prepared, 1 when not."""
    from rag_model.offline import apply_offline_defaults

    apply_offline_defaults()
    uri, result_file = argv[1], Path(argv[2])
    result_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = prepare(uri)
    except Exception as exc:  # reported to the workers, which then load the version alone
        write_result(result_file, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    write_result(result_file, result)
    return 0
