"""Live traffic in the version report: the summary of served traces and its table with deltas."""

from __future__ import annotations

import dataclasses

import pytest

from evaluation.report.data import Baseline
from evaluation.report.html import render_html
from evaluation.report.live import LiveTraffic, is_positive, summarize
from evaluation.report.markdown import render_markdown
from tests.evaluation.report.fixtures import sample_report, table_rows


@pytest.mark.parametrize(
    ("value", "positive"),
    [(True, True), (False, False), (5, True), (4.0, True), (3, False), (1, False),
     (0, None), (6, None), ("yes", None), (None, None), (float("nan"), None)],
)  # fmt: skip
def test_thumbs_and_ratings_of_four_or_more_are_positive(value: object, positive: bool) -> None:
    assert is_positive(value) is positive


def test_summary_of_served_traces() -> None:
    live = summarize([10.0, 20.0, 30.0, 40.0], [True, 5, 2, "bad", False])
    assert live == LiveTraffic(4, 25.0, pytest.approx(38.5), 4, 0.5)
    assert live.metrics()["live_positive_share"] == 0.5
    quiet = summarize([], [])
    assert quiet == LiveTraffic(0, None, None, 0, None)
    assert quiet.metrics() == {"live_traces": 0.0, "live_feedback_count": 0.0}


def test_report_shows_live_traffic_with_deltas_against_production() -> None:
    report = dataclasses.replace(
        sample_report(),
        live=summarize([10.0, 20.0, 30.0], [True, True, False, 5]).metrics(),
        live_production=Baseline(
            "production", "3", summarize([10.0, 10.0], [True, False]).metrics()
        ),
    )
    rows = table_rows(render_html(report), "live-metrics")
    assert [text for _, text in rows[0]] == [
        "served (traces)", "this version", "vs production (v3)", "delta"
    ]  # fmt: skip
    by_name = {row[0][1]: row[1:] for row in rows[1:]}
    assert by_name["live_traces"] == [("num", "3"), ("num", "2"), ("num better", "+1.0000")]
    assert by_name["live_latency_p50_ms"][2] == ("num worse", "+10.0000")  # slower: worse
    assert by_name["live_positive_share"][:2] == [("num", "0.7500"), ("num", "0.5000")]
    markdown = render_markdown(report)
    assert "## Live traffic" in markdown
    assert "| live_feedback_count | 4 | 2 | +2.0000 better |" in markdown


def test_a_version_without_traffic_or_production_says_so() -> None:
    report = dataclasses.replace(sample_report(), live=summarize([], []).metrics())
    page = render_html(report)
    assert "No served traces recorded for this version or for production." in page
    assert not table_rows(page, "live-metrics")
    served = dataclasses.replace(report, live=summarize([12.0], []).metrics())
    rows = table_rows(render_html(served), "live-metrics")
    assert [text for _, text in rows[0]] == ["served (traces)", "this version"]
    assert {row[0][1]: row[1][1] for row in rows[1:]} == {
        "live_traces": "1", "live_latency_p50_ms": "12", "live_latency_p95_ms": "12",
        "live_feedback_count": "0", "live_positive_share": "n/a",
    }  # fmt: skip
