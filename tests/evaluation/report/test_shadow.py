"""Shadow traffic in the version report: the pairs summarised, or a note saying why none."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

from mlflow.exceptions import MlflowException

from evaluation.report.html import render_html
from evaluation.report.markdown import render_markdown
from experiments.version_report import shadow_comparison
from rag_model.shadow import ShadowSummary
from tests.evaluation.report.fixtures import XSS, sample_report, table_rows

SUMMARY = ShadowSummary(
    model="rag-model",
    live_version="3",
    shadow_version="5",
    pairs=42,
    jaccard=0.6667,
    top1_agreement=0.75,
    answer_f1=0.8123,
    live_p50_ms=21.5,
    live_p99_ms=80.0,
    shadow_p50_ms=30.25,
    shadow_p99_ms=120.0,
)


def test_report_shows_the_shadow_pairs_against_production() -> None:
    report = dataclasses.replace(sample_report(), shadow=SUMMARY)
    page = render_html(report)
    rows = table_rows(page, "shadow-metrics")
    assert [text for _, text in rows[0]] == ["against production (v3)", "value"]
    assert {row[0][1]: row[1][1] for row in rows[1:]} == {
        "pairs": "42",
        "document Jaccard": "0.6667",
        "top-1 agreement": "0.7500",
        "answer similarity (token F1)": "0.8123",
        "production latency p50 (ms)": "21.5",
        "production latency p99 (ms)": "80.0",
        "this version's latency p50 (ms)": "30.2",
        "this version's latency p99 (ms)": "120.0",
    }
    # the last section: after live traffic
    assert page.index('id="live-traffic"') < page.index('id="shadow-traffic"')
    markdown = render_markdown(report)
    assert "## Shadow traffic\n\nAgainst production (v3), on the same requests:" in markdown
    assert "| top-1 agreement | 0.7500 |" in markdown
    assert "| this version's latency p99 (ms) | 120.0 |" in markdown
    assert markdown.index("## Live traffic") < markdown.index("## Shadow traffic")
    assert report.to_json_dict()["shadow"]["pairs"] == 42


def test_a_version_never_shadowed_says_why_in_one_line() -> None:
    page = render_html(sample_report())
    assert not table_rows(page, "shadow-metrics")
    assert '<p class="empty">No shadow pairs recorded for this version.</p>' in page
    noted = dataclasses.replace(sample_report(), shadow_note=f"Could not read {XSS}")
    assert "Could not read &lt;script&gt;" in render_html(noted)  # notes carry error text
    markdown = render_markdown(noted)
    assert markdown.rstrip().endswith(
        "## Shadow traffic\n\nCould not read \\<script\\>alert(1)\\</script\\>"
    )  # inert in Markdown too


class _Client:
    """Just enough of MlflowClient: production is v3; reading the shadow runs fails."""

    def __init__(self, production: str | None) -> None:
        self.production = production

    def get_model_version_by_alias(self, name: str, alias: str) -> SimpleNamespace:
        if self.production is None:
            raise MlflowException(f"alias {alias} not found")
        return SimpleNamespace(version=self.production)

    def search_experiments(self) -> list[object]:
        raise MlflowException("database is locked\nTraceback ...")


def test_the_shadow_lookup_gives_a_note_instead_of_failing() -> None:
    client = _Client("3")
    assert shadow_comparison("rag-model", "5", client) == (  # type: ignore[arg-type]
        None,
        "Shadow pairs could not be read (MlflowException: database is locked).",
    )
    assert shadow_comparison("rag-model", "3", client) == (  # type: ignore[arg-type]
        None,
        "This version is production: it is not shadowed against itself.",
    )
    assert shadow_comparison("rag-model", "5", _Client(None)) == (  # type: ignore[arg-type]
        None,
        "No production version to shadow this version against.",
    )
