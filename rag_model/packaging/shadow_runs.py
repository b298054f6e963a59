"""Shadow comparisons in the tracking store: written in batches by the server, read by reports.

Each server process records the pairs of one (model, live version, shadow version) in one run
of the shadow version's experiment, tagged ``rag.shadow=true``: every flush appends one JSONL
artifact ``shadow/pairs-<pid>-<n>.jsonl`` (a batch, never one call per request) and updates
running metrics (``shadow_pairs``, ``shadow_top1_agreement``, ``shadow_jaccard``,
``shadow_answer_f1``) for the UI. Readers (``rag-model shadow-report``, the promotion gate)
gather the artifacts of every such run, whichever process or replica wrote them.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, RunStatus

from rag_model.shadow import ShadowSummary, summarise

SHADOW_TAG = "rag.shadow"
PAIRS_DIR = "shadow"
MEASURES = ("top1_agreement", "jaccard", "answer_f1")


class ShadowRecorder:
    """Writes batches of pair records; one run per (model, live, shadow version) per process."""

    def __init__(self, client: MlflowClient | None = None) -> None:
        self.client = client or MlflowClient()
        self._runs: dict[tuple[str, str, str], str] = {}
        self._sums: dict[str, dict[str, float]] = {}
        self._batches = 0

    def write(self, pairs: Sequence[Mapping[str, Any]]) -> None:
        groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
        for pair in pairs:
            key = (str(pair["model"]), str(pair["live_version"]), str(pair["shadow_version"]))
            groups.setdefault(key, []).append(pair)
        for key, group in groups.items():
            run_id = self._run(key, group[0].get("shadow_run_id"))
            self._batches += 1
            name = f"pairs-{os.getpid()}-{self._batches:06d}.jsonl"
            text = "\n".join(json.dumps(dict(pair), sort_keys=True) for pair in group) + "\n"
            self.client.log_text(run_id, text, f"{PAIRS_DIR}/{name}")
            sums = self._sums.setdefault(run_id, {"pairs": 0.0, **dict.fromkeys(MEASURES, 0.0)})
            sums["pairs"] += len(group)
            for measure in MEASURES:
                sums[measure] += sum(float(pair[measure]) for pair in group)
            now, step = int(time.time() * 1000), int(sums["pairs"])
            metrics = [Metric("shadow_pairs", sums["pairs"], now, step)] + [
                Metric(f"shadow_{m}", sums[m] / sums["pairs"], now, step) for m in MEASURES
            ]
            self.client.log_batch(run_id, metrics=metrics)

    def _run(self, key: tuple[str, str, str], shadow_run_id: str | None) -> str:
        if key in self._runs:
            return self._runs[key]
        model, live, shadow = key
        experiment = "0"
        if shadow_run_id:  # beside the run that logged the shadow version
            experiment = self.client.get_run(shadow_run_id).info.experiment_id
        run = self.client.create_run(
            experiment,
            run_name=f"shadow {model} v{shadow} vs v{live}",
            tags={
                SHADOW_TAG: "true",
                "rag.shadow.model": model,
                "rag.shadow.version": shadow,
                "rag.shadow.live_version": live,
                "rag.shadow.pid": str(os.getpid()),
            },
        )
        self._runs[key] = run.info.run_id
        return run.info.run_id

    def close(self) -> None:
        """Mark this process's runs finished (the server calls it at exit, after a last flush)."""
        for run_id in self._runs.values():
            try:
                self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
            except Exception:  # noqa: BLE001 - exiting: the pairs are already stored
                pass
        self._runs.clear()


def read_pairs(
    client: MlflowClient | None = None,
    model: str | None = None,
    shadow_version: str | None = None,
) -> list[dict[str, Any]]:
    """Every recorded pair (optionally of one model, one shadow version), from every run."""
    client = client or MlflowClient()
    query = f"tags.`{SHADOW_TAG}` = 'true'"
    if model:
        query += f" and tags.`rag.shadow.model` = '{model}'"
    if shadow_version:
        query += f" and tags.`rag.shadow.version` = '{shadow_version}'"
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, query, max_results=10_000) if experiments else []
    pairs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        for run in runs:
            for artifact in client.list_artifacts(run.info.run_id, PAIRS_DIR):
                local = client.download_artifacts(run.info.run_id, artifact.path, folder)
                lines = Path(local).read_text(encoding="utf-8").splitlines()
                pairs += [json.loads(line) for line in lines if line.strip()]
    return pairs


def shadow_summaries(
    client: MlflowClient | None = None, model: str | None = None
) -> list[ShadowSummary]:
    """One summary per (model, live version, shadow version) recorded."""
    return summarise(read_pairs(client, model))


def shadow_summary(
    model: str, live_version: str | None, shadow_version: str, client: MlflowClient | None = None
) -> ShadowSummary | None:
    """The pairs of ``shadow_version`` against ``live_version`` (None: no pairs recorded)."""
    pairs = [
        pair
        for pair in read_pairs(client, model, shadow_version)
        if live_version is None or str(pair["live_version"]) == str(live_version)
    ]
    found = summarise(pairs)
    return found[0] if len(found) == 1 else None
