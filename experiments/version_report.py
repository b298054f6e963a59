"""Write a version's evaluation report: gather baselines from the registry, render, log.

The report compares with the current ``production`` version and the previous version, each only
when it was evaluated on the same dataset (same digest): other comparisons would mislead.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from evaluation.dataset import EvalSet
from evaluation.report.data import (
    Baseline,
    QuestionRow,
    ReportData,
    RetrievedSource,
    VersionPoint,
    comparable_metrics,
)
from evaluation.runner import EvalResult
from rag_model.gate import Evaluation
from rag_model.packaging.registry import PRODUCTION
from rag_model.shadow import ShadowSummary

REPORT_DIR = "evaluation"  # artifact folder of the evaluation run
WORST_QUESTIONS = 10
SNIPPET_CHARS = 300


def evaluated_versions(name: str, client: MlflowClient) -> list[Evaluation]:
    """Every version of ``name`` that carries an evaluation, in version order."""
    versions = client.search_model_versions(f"name = '{name}'")
    found = [Evaluation.from_tags(str(v.version), v.tags) for v in versions]
    return sorted(
        (
            Evaluation(e.version, e.dataset_digest, comparable_metrics(e.metrics))
            for e in found
            if e is not None
        ),
        key=lambda e: int(e.version),
    )


def gather_comparisons(
    name: str, version: str | None, digest: str, client: MlflowClient
) -> tuple[list[Baseline], list[VersionPoint]]:
    """The baselines (production, previous) and the trend of versions on the same dataset."""
    same_dataset = [e for e in evaluated_versions(name, client) if e.dataset_digest == digest]
    if version is not None:  # this version's own (earlier) evaluation is replaced by this one
        same_dataset = [e for e in same_dataset if e.version != version]
    baselines = []
    production = _alias_version(name, PRODUCTION, client)
    for evaluation in same_dataset:
        if evaluation.version == production and evaluation.version != version:
            baselines.append(Baseline(PRODUCTION, evaluation.version, evaluation.metrics))
    earlier = [e for e in same_dataset if version is None or int(e.version) < int(version)]
    if earlier:
        previous = earlier[-1]
        baselines.append(Baseline("previous", previous.version, previous.metrics))
    trend = [VersionPoint(e.version, e.metrics, digest) for e in earlier]
    return baselines, trend


def _alias_version(name: str, alias: str, client: MlflowClient) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def report_data(
    result: EvalResult,
    eval_set: EvalSet,
    digest: str,
    config: dict[str, Any],
    model_name: str,
    version: str | None,
    run_id: str,
    k: int,
    client: MlflowClient | None = None,
    changes: dict[str, Any] | None = None,
) -> ReportData:
    """Everything the report shows, with comparisons read from the registry.

    Metrics cut at the model's k are shown without the suffix (``hit_rate``), as the gate
    compares them, so versions with different k line up; the config table shows k.
    """
    metrics = comparable_metrics(result.metrics, k)
    baselines, trend = (
        gather_comparisons(model_name, version, digest, client or MlflowClient())
        if model_name
        else ([], [])
    )
    live, live_production = {}, None
    shadow, shadow_note = None, ""
    if version is not None:
        trend = [*trend, VersionPoint(version, metrics, digest, run_id)]
        if model_name:
            live, live_production = live_comparison(model_name, version, client or MlflowClient())
            shadow, shadow_note = shadow_comparison(model_name, version, client or MlflowClient())
    return ReportData(
        model_name=model_name,
        version=version,
        run_id=run_id,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        config=config,
        dataset={
            "name": eval_set.name,
            "source": eval_set.source,
            "format": eval_set.format,
            "digest": digest,
            "questions": len(eval_set.examples),
        },
        metrics=metrics,
        baselines=baselines,
        trend=trend,
        recall_curve=result.recall_curve,
        latencies_ms=result.latencies_ms,
        worst=[_question_row(row) for row in result.worst(WORST_QUESTIONS)],
        live=live,
        live_production=live_production,
        changes=changes,
        shadow=shadow,
        shadow_note=shadow_note,
    )


def live_comparison(
    name: str, version: str, client: MlflowClient
) -> tuple[dict[str, float], Baseline | None]:
    """This version's live-traffic figures, and production's (when another version is)."""
    from experiments.live_traffic import live_traffic

    live = live_traffic(name, version, client).metrics()
    production = _alias_version(name, PRODUCTION, client)
    if production is None or production == version:
        return live, None
    return live, Baseline(PRODUCTION, production, live_traffic(name, production, client).metrics())


def shadow_comparison(
    name: str, version: str, client: MlflowClient
) -> tuple[ShadowSummary | None, str]:
    """This version's shadow pairs against production, or None and a note saying why none.

    One lookup of the shadow runs; a store that cannot be read gives a note, never a failed
    report (the evaluation itself is what the report is for).
    """
    from rag_model.packaging.shadow_runs import shadow_summary

    production = _alias_version(name, PRODUCTION, client)
    if production is None:
        return None, "No production version to shadow this version against."
    if production == version:
        return None, "This version is production: it is not shadowed against itself."
    try:
        summary = shadow_summary(name, production, version, client)
    except Exception as error:  # noqa: BLE001 - a note in the report, not a failed evaluation
        first = (str(error).splitlines() or [""])[0][:200]  # a note, not a traceback
        return None, f"Shadow pairs could not be read ({type(error).__name__}: {first})."
    if summary is None:
        return None, f"Never shadowed against production (v{production}): no pairs recorded."
    return summary, ""


def _question_row(row: dict[str, Any]) -> QuestionRow:
    return QuestionRow(
        id=row["id"],
        question=row["question"],
        answer=row["answer"],
        reference_answers=row["reference_answers"],
        relevant_ids=row["relevant_ids"],
        sources=[
            RetrievedSource(s["document_id"], s["text"][:SNIPPET_CHARS], s["score"], s["relevant"])
            for s in row["sources"]
        ],
        scores=row["scores"],
    )


def write_report_files(data: ReportData, rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """``report.html``, ``report.md``, ``metrics.json`` and ``questions.jsonl`` into ``out``."""
    from evaluation.report.html import render_html
    from evaluation.report.markdown import render_markdown

    out.mkdir(parents=True, exist_ok=True)
    files = {
        "report.html": render_html(data),
        "report.md": render_markdown(data),
        "metrics.json": json.dumps(data.to_json_dict(), indent=2, ensure_ascii=False) + "\n",
        "questions.jsonl": "".join(
            json.dumps(_json_safe(row), ensure_ascii=False) + "\n" for row in rows
        ),
    }
    for filename, text in files.items():
        (out / filename).write_text(text, encoding="utf-8")
    return [out / filename for filename in files]


def _json_safe(value: Any) -> Any:
    # questions.jsonl must be strict JSON: NaN (not applicable) becomes null
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
