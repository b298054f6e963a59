"""One version's evaluation report as a short Markdown summary (the HTML report has the detail).

Meant for places that show Markdown but not HTML: the MLflow artifact view, a pull request, a
chat message. Untrusted text (questions, answers) is put on one line with ``|`` and ``<`` ``>``
backslash-escaped, so it can neither break a table nor be read as HTML by a renderer.
"""

from __future__ import annotations

from evaluation.report.changes import changes_markdown
from evaluation.report.data import QuestionRow, ReportData
from evaluation.report.format import (
    baseline_heading,
    config_summary,
    delta_class,
    format_delta,
    format_live,
    format_value,
    short_digest,
)
from evaluation.report.html import MAX_WORST, excerpt
from evaluation.report.live import LIVE_METRICS
from evaluation.report.shadow import shadow_markdown

CELL_CHARS = 160
DELTA_WORDS = {"better": " better", "worse": " worse", "same": ""}


def render_markdown(data: ReportData) -> str:
    """Render the Markdown summary of one evaluated version.

    Args:
        data: what the report shows.

    Returns:
        Markdown: title, config line, dataset, headline metrics with deltas, worst questions.
    """
    lines = [f"# Evaluation report: {data.title}", ""]
    lines += [f"Evaluated {data.created} · run `{data.run_id}`", ""]
    lines += [f"**Config**: {_config_line(data)}", ""]
    lines += [f"**Dataset**: {_dataset_line(data)}", ""]
    lines += changes_markdown(data.changes, _cell)
    lines += ["## Headline metrics", "", *_headline_table(data), ""]
    lines += ["## Worst questions", "", *_worst_table(data.worst[:MAX_WORST]), ""]
    lines += ["## Live traffic", "", *_live_table(data), ""]
    lines += shadow_markdown(data.shadow, data.shadow_note, _cell)
    return "\n".join(lines)


def _config_line(data: ReportData) -> str:
    return " · ".join(f"{label}: {value}" for label, value in config_summary(data.config))


def _dataset_line(data: ReportData) -> str:
    dataset = data.dataset
    name = _cell(str(dataset.get("name", "unnamed")))
    parts = [name]
    if dataset.get("source"):
        parts.append(f"from {_cell(str(dataset['source']))}")
    if "questions" in dataset:
        parts.append(f"{dataset['questions']} questions")
    parts.append(f"digest `{short_digest(dataset.get('digest')) or 'unknown'}`")
    return ", ".join(parts)


def _headline_table(data: ReportData) -> list[str]:
    names = data.headline()
    if not names:
        return ["No headline metrics."]
    headings = [baseline_heading(b.label, b.version) for b in data.baselines]
    deltas = data.deltas()
    rows = [_row(["metric", "value", *headings]), _row(["---", "---:", *["---:"] * len(headings)])]
    for name in names:
        cells = [name, format_value(data.metrics[name])]
        for baseline in data.baselines:
            delta = deltas.get(baseline.label, {}).get(name)
            cells.append(format_delta(delta) + DELTA_WORDS[delta_class(name, delta)])
        rows.append(_row(cells))
    return rows


def _live_table(data: ReportData) -> list[str]:
    production = data.live_production
    headings = [baseline_heading(production.label, production.version)] if production else []
    rows = [
        _row(["served (traces)", "this version", *headings, *(["delta"] if production else [])])
    ]
    rows.append(_row(["---", "---:", *["---:"] * (2 * len(headings))]))
    deltas = data.live_deltas()
    for name in LIVE_METRICS:
        cells = [name, format_live(name, data.live.get(name))]
        if production:
            delta = deltas.get(name)
            cells += [
                format_live(name, production.metrics.get(name)),
                format_delta(delta) + DELTA_WORDS[delta_class(name, delta)],
            ]
        rows.append(_row(cells))
    return rows


def _worst_table(worst: list[QuestionRow]) -> list[str]:
    if not worst:
        return ["No questions to list."]
    rows = [_row(["#", "question", "answer", "relevant", "retrieved", "scores"])]
    rows.append(_row(["---:", "---", "---", "---", "---", "---"]))
    for number, row in enumerate(worst, start=1):
        retrieved = ", ".join(
            f"**{s.document_id}**" if s.relevant else s.document_id for s in row.sources
        )
        scores = ", ".join(f"{name} {format_value(value)}" for name, value in row.scores.items())
        cells = [str(number), row.question, row.answer, ", ".join(row.relevant_ids)]
        rows.append(_row([_cell(c) for c in cells] + [_cell(retrieved), scores]))
    rows += ["", "Retrieved documents in **bold** are relevant."]
    return rows


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _cell(text: str) -> str:
    # one line, bounded, and inert: no table breaks, no raw HTML
    text = excerpt(" ".join(text.split()), CELL_CHARS)
    for char in "\\|<>":
        text = text.replace(char, "\\" + char)
    return text
