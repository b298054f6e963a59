"""One version's evaluation report as a single self-contained HTML file.

No external CSS, scripts or fonts, and the plots are embedded as ``data:`` PNGs, so the file can
be logged as an MLflow artifact, mailed or opened offline. The Jinja2 template escapes every
value: questions, answers and chunk texts are untrusted text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any

import jinja2

from evaluation.report import plots
from evaluation.report.changes import changes_view
from evaluation.report.data import QuestionRow, ReportData, RetrievedSource
from evaluation.report.format import (
    baseline_heading,
    config_summary,
    delta_class,
    format_delta,
    format_live,
    format_value,
    png_data_uri,
    trend_metrics,
)
from evaluation.report.live import LIVE_METRICS
from evaluation.report.shadow import shadow_view

MAX_WORST = 10
PRODUCTION_LABEL = "production"
EXCERPT_CHARS = 300
DATASET_FIELDS = ("name", "source", "digest", "questions")


@cache
def template_environment() -> jinja2.Environment:
    """The Jinja2 environment for the report templates (autoescape on, undefined names fail)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("evaluation.report", "templates"),
        autoescape=True,  # every template is HTML and every value may be untrusted text
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the render, not blanks a cell
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(data: ReportData) -> str:
    """Render the report of one evaluated version.

    Args:
        data: what the report shows.

    Returns:
        The whole HTML document, with plots embedded as base64 PNGs.
    """
    template = template_environment().get_template("report.html.j2")
    return template.render(
        title=data.title,
        created=data.created,
        run_id=data.run_id,
        config_rows=config_summary(data.config),
        config_json=json.dumps(data.config, indent=2, sort_keys=True, default=str),
        dataset_rows=_dataset_rows(data.dataset),
        baseline_headings=[baseline_heading(b.label, b.version) for b in data.baselines],
        headline=_headline_rows(data),
        others=[(name, format_value(data.metrics[name])) for name in _other_metrics(data)],
        live=_live_rows(data),
        live_shown=bool(data.live.get("live_traces")) or data.live_production is not None,
        live_production=(
            baseline_heading(PRODUCTION_LABEL, data.live_production.version)
            if data.live_production
            else None
        ),
        plots=_plot_entries(data),
        worst=[_question_view(row) for row in data.worst[:MAX_WORST]],
        changes=changes_view(data.changes),
        shadow=shadow_view(data.shadow, data.shadow_note),
    )


def _dataset_rows(dataset: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The dataset facts as ``(label, value)``: name, source, digest, questions, then the rest."""
    known = [key for key in DATASET_FIELDS if key in dataset]
    extra = sorted(key for key in dataset if key not in DATASET_FIELDS)
    return [(key, str(dataset[key])) for key in known + extra]


def _headline_rows(data: ReportData) -> list[dict[str, Any]]:
    """One row per headline metric: its value and one formatted delta per baseline."""
    deltas = data.deltas()
    rows = []
    for name in data.headline():
        cells = []
        for baseline in data.baselines:
            delta = deltas.get(baseline.label, {}).get(name)
            cells.append({"text": format_delta(delta), "css": delta_class(name, delta)})
        rows.append({"name": name, "value": format_value(data.metrics[name]), "deltas": cells})
    return rows


def _live_rows(data: ReportData) -> list[dict[str, Any]]:
    """One row per live-traffic figure: this version's, production's, and the delta."""
    deltas = data.live_deltas()
    other = data.live_production.metrics if data.live_production else {}
    rows = []
    for name in LIVE_METRICS:
        delta = deltas.get(name)
        rows.append(
            {
                "name": name,
                "value": format_live(name, data.live.get(name)),
                "production": format_live(name, other.get(name)),
                "delta": {"text": format_delta(delta), "css": delta_class(name, delta)},
            }
        )
    return rows


def _other_metrics(data: ReportData) -> list[str]:
    """The metrics that are not headline metrics, by name."""
    headline = set(data.headline())
    return sorted(name for name in data.metrics if name not in headline)


def _plot_entries(data: ReportData) -> list[dict[str, str | None]]:
    """The three plots with their ids, alt texts and data URIs (None: not enough data)."""
    trend_names = trend_metrics(data.metrics)
    return [
        {
            "id": "plot-trend",
            "alt": "Metric trend across versions",
            "caption": "Headline scores of the versions evaluated on this dataset "
            "(latency is in the table: its scale would flatten these lines).",
            "uri": png_data_uri(plots.metric_trend(data.trend, trend_names)),
        },
        {
            "id": "plot-recall",
            "alt": "Recall@n curve",
            "caption": "Share of relevant documents found in the top n, averaged over questions.",
            "uri": png_data_uri(plots.recall_curve(data.recall_curve)),
        },
        {
            "id": "plot-latency",
            "alt": "Latency histogram",
            "caption": "Time to answer each question, with the p50 and p95 latencies.",
            "uri": png_data_uri(plots.latency_histogram(data.latencies_ms)),
        },
    ]


def _question_view(row: QuestionRow) -> dict[str, Any]:
    """A worst-question row ready for the template: formatted scores, shortened chunk texts."""
    return {
        "id": row.id,
        "question": row.question,
        "answer": row.answer,
        "reference_answers": row.reference_answers,
        "relevant_ids": row.relevant_ids,
        "scores": [(name, format_value(value)) for name, value in row.scores.items()],
        "sources": [_source_view(source) for source in row.sources],
    }


def _source_view(source: RetrievedSource) -> dict[str, Any]:
    """A retrieved chunk for the template, its text cut to about 300 characters."""
    return {
        "document_id": source.document_id,
        "score": format_value(source.score),
        "excerpt": excerpt(source.text),
        "relevant": source.relevant,
    }


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The first ``limit`` characters of ``text``, cut at a word where possible, with "…"."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    # cut at the last space unless that loses most of the excerpt (e.g. one long token)
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip() + "…"
