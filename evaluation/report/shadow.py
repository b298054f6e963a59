"""The report's "Shadow traffic" section: this version answering production's traffic unseen.

Shadow pairs (``rag_model.shadow``) are recorded by the server as runs of the shadow version;
``experiments.version_report.shadow_comparison`` reads them once and hands over a
``ShadowSummary``, or None with a note saying why there is none (never shadowed, no production
version, the store could not be read). This module only lays the summary out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rag_model.shadow import ShadowSummary

# (label, ShadowSummary field, unit) in display order
SHADOW_ROWS = (
    ("pairs", "pairs", "count"),
    ("document Jaccard", "jaccard", "share"),
    ("top-1 agreement", "top1_agreement", "share"),
    ("answer similarity (token F1)", "answer_f1", "share"),
    ("production latency p50 (ms)", "live_p50_ms", "ms"),
    ("production latency p99 (ms)", "live_p99_ms", "ms"),
    ("this version's latency p50 (ms)", "shadow_p50_ms", "ms"),
    ("this version's latency p99 (ms)", "shadow_p99_ms", "ms"),
)
NOT_SHADOWED = "No shadow pairs recorded for this version."


def shadow_view(summary: ShadowSummary | None, note: str = "") -> dict[str, Any]:
    """What the template and the Markdown show: the heading's versions and rows, or a note."""
    if summary is None or not summary.pairs:
        return {"rows": [], "note": note or NOT_SHADOWED, "against": None}
    rows = [(label, _format(getattr(summary, name), unit)) for label, name, unit in SHADOW_ROWS]
    return {"rows": rows, "note": "", "against": f"production (v{summary.live_version})"}


def shadow_markdown(
    summary: ShadowSummary | None, note: str, cell: Callable[[str], str]
) -> list[str]:
    """The section as Markdown lines: a table, or the note (``cell`` escapes error text)."""
    view = shadow_view(summary, note)
    lines = ["## Shadow traffic", ""]
    if not view["rows"]:
        return [*lines, cell(view["note"]), ""]
    lines += [f"Against {view['against']}, on the same requests:", ""]
    lines += ["| shadow pairs | value |", "| --- | ---: |"]
    lines += [f"| {label} | {value} |" for label, value in view["rows"]]
    return [*lines, ""]


def _format(value: float, unit: str) -> str:
    if unit == "count":
        return str(int(value))
    return f"{value:.1f}" if unit == "ms" else f"{value:.4f}"
