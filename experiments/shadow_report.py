"""Entry point ``shadow-report``: how shadow versions answered live traffic, per version pair.

Reads the pairs every server recorded (``rag_model.packaging.shadow_runs``) from the tracking
store and prints one row per (model, live version, shadow version).
"""

from __future__ import annotations

import json

import click

from experiments.params import option

COLUMNS = (
    ("model", "model"),
    ("live_version", "live"),
    ("shadow_version", "shadow"),
    ("pairs", "pairs"),
    ("top1_agreement", "top-1 agree"),
    ("jaccard", "doc Jaccard"),
    ("answer_f1", "answer F1"),
    ("live_p50_ms", "live p50 ms"),
    ("live_p99_ms", "live p99 ms"),
    ("shadow_p50_ms", "shadow p50 ms"),
    ("shadow_p99_ms", "shadow p99 ms"),
)


@click.command("shadow-report")
@option("--model-name", default="", help="Only this registered model [all].")
@option("--json", "as_json", is_flag=True, help="One JSON object per version pair.")
def shadow_report(model_name: str, as_json: bool) -> None:
    """Summarise shadow comparisons recorded by servers with RAG_SHADOW_URI, per version pair."""
    from experiments.errors import friendly_errors
    from rag_model.packaging.shadow_runs import shadow_summaries

    with friendly_errors():
        summaries = shadow_summaries(model=model_name or None)
    if as_json:
        for summary in summaries:
            click.echo(json.dumps(summary.as_row()))
        return
    if not summaries:
        click.echo("no shadow pairs recorded yet (serve with RAG_SHADOW_URI and RAG_SHADOW_SAMPLE)")
        return
    rows = [[str(summary.as_row()[key]) for key, _ in COLUMNS] for summary in summaries]
    widths = [
        max(len(title), *(len(row[i]) for row in rows)) for i, (_, title) in enumerate(COLUMNS)
    ]
    click.echo("  ".join(title.ljust(w) for (_, title), w in zip(COLUMNS, widths, strict=True)))
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
