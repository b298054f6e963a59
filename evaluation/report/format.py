"""Formatting shared by the report renderers (HTML, Markdown, index page), so all agree.

Values are shown with 4 decimals and NaN as "n/a"; deltas with their sign and a class saying
whether the change is an improvement for that metric (latency: lower is better).
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from evaluation.report.data import LOWER_IS_BETTER, headline_names, is_improvement

NOT_AVAILABLE = "n/a"
DECIMALS = 4
SHORT_DIGEST = 12
# config rows shown in the summary: (label, dotted path(s) into the RagConfig dict)
CONFIG_SUMMARY = (
    ("chunking strategy", "chunking.strategy"),
    ("chunk size", "chunking.chunk_size"),
    ("chunk overlap", "chunking.chunk_overlap"),
    ("retrieval mode", "retrieval.mode"),
    ("k", "retrieval.k"),
    ("fusion", "retrieval.fusion"),
    ("embedder", "embedding.model"),
    ("generator", "generation.generator"),
)


def format_live(name: str, value: float | None) -> str:
    """A live-traffic figure: counts as integers (0 and 1 included), the rest as metrics."""
    if (
        value is not None
        and math.isfinite(value)
        and name in ("live_traces", "live_feedback_count")
    ):
        return str(int(value))
    return format_value(value)


def format_value(value: float | None) -> str:
    """A metric value for display: 4 decimals, whole counts as integers, "n/a" for NaN or missing.

    Example:
        >>> format_value(0.95), format_value(178.0), format_value(1.0), format_value(float("nan"))
        ('0.9500', '178', '1.0000', 'n/a')
    """
    if value is None or not math.isfinite(value):
        return NOT_AVAILABLE
    if value == int(value) and abs(value) >= 2:
        # counts (questions, chunks): a rate is at most 1, so 1.0 keeps its decimals
        return str(int(value))
    return f"{value:.{DECIMALS}f}"


def format_delta(delta: float | None) -> str:
    """A delta with its sign, e.g. "+0.0500" or "-0.0120"; "n/a" when missing.

    Example:
        >>> format_delta(0.95 - 0.90), format_delta(-0.012)
        ('+0.0500', '-0.0120')
    """
    if delta is None or not math.isfinite(delta):
        return NOT_AVAILABLE
    if _rounds_to_zero(delta):
        return f"{0:.{DECIMALS}f}"  # never "-0.0000"
    return f"{delta:+.{DECIMALS}f}"


def delta_class(metric: str, delta: float | None) -> str:
    """``"better"``, ``"worse"`` or ``"same"`` (also for missing or a change that rounds to 0)."""
    if delta is None or not math.isfinite(delta) or _rounds_to_zero(delta):
        return "same"
    return "better" if is_improvement(metric, delta) else "worse"


def baseline_heading(label: str, version: str) -> str:
    """Column heading of a delta column, e.g. "vs production (v3)"."""
    return f"vs {label} (v{version})"


def trend_metrics(names: Iterable[str]) -> list[str]:
    """The headline metrics worth a trend line: scores only, since ms would squash the 0-1 axis.

    Live-traffic figures (counts, ms, a share of a different population) are left out too.
    """
    return [
        n
        for n in headline_names(names)
        if not any(n.startswith(p) for p in (*LOWER_IS_BETTER, "live_"))
    ]


def config_value(config: Mapping[str, Any], path: str) -> Any:
    """Look up ``"section.key"`` in a nested config dict, or as a flattened key; None if absent."""
    if path in config:
        return config[path]
    value: Any = config
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def config_summary(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The key config settings as ``(label, value)`` rows; "not set" where the config lacks one."""
    rows = []
    for label, path in CONFIG_SUMMARY:
        value = config_value(config, path)
        if path == "generation.generator" and value == "openai":
            # the generator name alone does not say which LLM answered
            value = f"openai ({config_value(config, 'generation.model')})"
        rows.append((label, "not set" if value is None else str(value)))
    return rows


def short_digest(digest: str | None) -> str:
    """The first 12 characters of a dataset digest (enough to tell datasets apart)."""
    return (digest or "")[:SHORT_DIGEST]


def png_data_uri(png: bytes | None) -> str | None:
    """``data:image/png;base64,...`` for embedding a PNG in HTML; None passes through."""
    if png is None:
        return None
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def version_sort_key(version: str | None) -> tuple[int, str]:
    """Sort key putting registry versions in numeric order ("10" after "9"), others after."""
    version = version or ""
    return (int(version), "") if re.fullmatch(r"\d+", version) else (10**12, version)


def _rounds_to_zero(delta: float) -> bool:
    # what the reader sees decides the colour: a red "-0.0000" would be noise
    return round(delta, DECIMALS) == 0
