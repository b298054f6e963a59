"""The index page across all evaluated versions of one registered model: a self-contained HTML file.

One row per version (newest first) with its aliases, dataset digest, headline metrics and a
relative link to its report, plus one trend plot per dataset: only versions evaluated on the
same data (same digest) are comparable, so they share a plot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from evaluation.report import plots
from evaluation.report.data import VersionPoint
from evaluation.report.format import (
    format_value,
    headline_names,
    png_data_uri,
    short_digest,
    trend_metrics,
    version_sort_key,
)
from evaluation.report.html import template_environment


@dataclass(frozen=True)
class IndexEntry:
    """One evaluated version as the index lists it.

    ``report_href`` is relative to the index page (e.g. ``"v3/report.html"``), None when the
    version has no report.
    """

    version: str
    aliases: list[str] = field(default_factory=list)
    created: str = ""
    run_id: str = ""
    dataset_digest: str = ""
    dataset_name: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    report_href: str | None = None


def render_index(model_name: str, entries: list[IndexEntry], generated: str) -> str:
    """Render the index page of a registered model's evaluated versions.

    Args:
        model_name: the registered model's name.
        entries: one per version, in any order (listed newest first).
        generated: when the page was built (ISO 8601), shown in the header.

    Returns:
        The whole HTML document, trend plots embedded as base64 PNGs.

    Raises:
        ValueError: if a ``report_href`` is not a relative link (the page must work offline
            and must not point anywhere else).
    """
    entries = sorted(entries, key=lambda e: version_sort_key(e.version), reverse=True)
    for entry in entries:
        _check_relative(entry.report_href)
    names = headline_names(name for entry in entries for name in entry.metrics)
    return (
        template_environment()
        .get_template("index.html.j2")
        .render(
            model_name=model_name,
            generated=generated,
            metric_names=names,
            rows=[_row(entry, names) for entry in entries],
            plots=_trend_plots(entries),
        )
    )


def _row(entry: IndexEntry, names: list[str]) -> dict[str, object]:
    return {
        "version": entry.version,
        "aliases": sorted(entry.aliases),
        "created": entry.created,
        "run_id": entry.run_id[:8],
        "dataset_name": entry.dataset_name or "unnamed",
        "digest": short_digest(entry.dataset_digest) or "unknown",
        "metrics": [format_value(entry.metrics.get(name)) for name in names],
        "report_href": entry.report_href,
    }


def _trend_plots(entries: list[IndexEntry]) -> list[dict[str, str]]:
    # grouped in first-seen order of the newest-first list: the current dataset's plot comes first
    groups: dict[str, list[IndexEntry]] = {}
    for entry in entries:
        if entry.dataset_digest:  # without a digest a version cannot be matched to others
            groups.setdefault(entry.dataset_digest, []).append(entry)
    result = []
    for digest, group in groups.items():
        points = [VersionPoint(e.version, e.metrics, digest, e.run_id) for e in group]
        png = plots.metric_trend(points, trend_metrics(n for e in group for n in e.metrics))
        if png is None:
            continue
        label = f"{group[0].dataset_name or 'unnamed'} ({short_digest(digest)})"
        result.append(
            {
                "id": "plot-trend-" + re.sub(r"[^A-Za-z0-9]+", "-", short_digest(digest)),
                "alt": f"Metric trend across versions on dataset {label}",
                "caption": f"Dataset {label}: {len(group)} version(s).",
                "uri": png_data_uri(png),
            }
        )
    return result


def _check_relative(href: str | None) -> None:
    if href is None:
        return
    parts = urlsplit(href)
    # a scheme (http:, javascript:) or a network location (//host) is not a relative link
    if parts.scheme or parts.netloc or href.startswith("/"):
        raise ValueError(f"report_href must be a relative link, got {href!r}")
