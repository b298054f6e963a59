"""The index page of a registered model's versions: order, aliases, links, per-dataset trends."""

from __future__ import annotations

import math
import re

import pytest

from evaluation.report.index_page import IndexEntry, render_index
from tests.evaluation.report.fixtures import embedded_images, table_rows

SAMPLE_DIGEST = "3f2a9c81d4e5b6a70000ffff"


def _entries() -> list[IndexEntry]:
    sample = {"dataset_digest": SAMPLE_DIGEST, "dataset_name": "sample"}
    return [
        IndexEntry(
            "3",
            ["production"],
            "2025-01-10T09:00:00Z",
            "a" * 32,
            **sample,
            metrics={"hit_rate_at_4": 0.90, "mrr_at_4": 0.82, "latency_p50_ms": 20.0},
            report_href="v3/report.html",
        ),
        IndexEntry(
            "10",
            ["champion", "<b>staging</b>"],
            "2025-01-15T09:00:00Z",
            "c" * 32,
            **sample,
            metrics={"hit_rate_at_4": 0.95, "faithfulness": math.nan, "latency_p50_ms": 25.5},
            report_href="v10/report.html",
        ),
        IndexEntry(
            "4",
            [],
            "2025-01-12T09:00:00Z",
            "b" * 32,
            **sample,
            metrics={"hit_rate_at_4": 0.93, "mrr_at_4": 0.80},
            report_href=None,
        ),
        IndexEntry(
            "2",
            [],
            "2025-01-01T09:00:00Z",
            "d" * 32,
            "99aa",
            "scifact",
            {"ndcg_at_10": 0.6, "hit_rate_at_4": 0.7},
            "v2/report.html",
        ),
    ]


@pytest.fixture(scope="module")
def page() -> str:
    return render_index("rag-model", _entries(), "2025-01-16T00:00:00Z")


def test_versions_are_listed_newest_first_with_headline_columns(page: str) -> None:
    rows = table_rows(page, "version-table")
    assert [text for _, text in rows[0]] == [
        "version",
        "aliases",
        "created",
        "dataset",
        "hit_rate_at_4",
        "mrr_at_4",
        "ndcg_at_10",
        "faithfulness",
        "latency_p50_ms",
        "report",
    ]
    assert [row[0][1] for row in rows[1:]] == ["v10", "v4", "v3", "v2"]
    newest = [text for _, text in rows[1]]
    assert newest[4:9] == ["0.9500", "n/a", "n/a", "n/a", "25.5000"]
    assert newest[3] == "sample 3f2a9c81d4e5"  # the digest, shortened


def test_aliases_are_badges_and_escaped(page: str) -> None:
    assert '<span class="badge production">production</span>' in page
    assert '<span class="badge">champion</span>' in page
    assert '<span class="badge">&lt;b&gt;staging&lt;/b&gt;</span>' in page


def test_reports_are_linked_relatively_where_there_is_one(page: str) -> None:
    assert re.findall(r'href="([^"]+)"', page) == [
        "v10/report.html",
        "v3/report.html",
        "v2/report.html",
    ]
    assert [row[-1][1] for row in table_rows(page, "version-table")[1:]] == [
        "report",
        "none",
        "report",
        "report",
    ]


def test_one_trend_plot_per_dataset_digest(page: str) -> None:
    images = embedded_images(page)
    assert list(images) == ["plot-trend-3f2a9c81d4e5", "plot-trend-99aa"]
    assert all(png.startswith(b"\x89PNG") for png in images.values())
    assert "Dataset sample (3f2a9c81d4e5): 3 version(s)." in page
    assert "http://" not in page and "https://" not in page


def test_no_versions() -> None:
    page = render_index("<m>", [], "2025-01-16T00:00:00Z")
    assert "No evaluated versions yet." in page and "<img" not in page
    assert "&lt;m&gt;: evaluated versions" in page and "<m>" not in page


@pytest.mark.parametrize(
    "href", ["https://example.org/r.html", "javascript:alert(1)", "//host/r.html", "/abs/r.html"]
)
def test_only_relative_report_links(href: str) -> None:
    entry = IndexEntry("1", [], "", "", "", "", {}, href)
    with pytest.raises(ValueError, match="must be a relative link"):
        render_index("m", [entry], "now")
