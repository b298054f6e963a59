"""The per-version evaluation report: a Markdown summary and a JSONL table of every question."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from evaluation.runner import EvalResult

MAX_FAILURES_LISTED = 20


def write_report(
    result: EvalResult, out_dir: str | Path, title: str, facts: dict[str, Any]
) -> list[Path]:
    """Write ``report.md`` and ``questions.jsonl`` into ``out_dir``; return their paths.

    Args:
        result: the evaluation to report.
        out_dir: folder to write into (created).
        title: the report heading, e.g. "rag-model v3".
        facts: key facts shown above the metrics (model URI, eval set, config ...).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "questions.jsonl"
    table.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in result.rows))

    lines = [f"# Evaluation report: {title}", ""]
    lines += [f"- **{key}**: {value}" for key, value in facts.items()]
    lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| {name} | {_format(value)} |" for name, value in sorted(result.metrics.items())]
    misses = [row for row in result.rows if row["hit"] == 0.0]
    lines += ["", f"## Retrieval misses ({len(misses)} of {len(result.rows)})", ""]
    if misses:
        lines += ["| question | relevant | retrieved |", "|---|---|---|"]
        for row in misses[:MAX_FAILURES_LISTED]:
            lines.append(
                f"| {_cell(row['question'])} | {', '.join(row['relevant_ids'])} | "
                f"{', '.join(row['retrieved_ids'])} |"
            )
        if len(misses) > MAX_FAILURES_LISTED:
            lines.append(f"\n… and {len(misses) - MAX_FAILURES_LISTED} more in questions.jsonl")
    else:
        lines.append("None: every question retrieved a relevant document.")
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return [report, table]


def _format(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
