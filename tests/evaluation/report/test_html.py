"""The per-version report: HTML (self-contained, escaped, exact deltas), Markdown, Chromium."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from evaluation.report import plots
from evaluation.report.data import ReportData, VersionPoint
from evaluation.report.format import delta_class, format_delta, format_value
from evaluation.report.html import excerpt, render_html
from evaluation.report.markdown import render_markdown
from tests.evaluation.report.fixtures import XSS, embedded_images, sample_report, table_rows

PNG = b"\x89PNG\r\n\x1a\n"
PLOT_IDS = {"plot-trend", "plot-recall", "plot-latency"}


@pytest.fixture(scope="module")
def report() -> ReportData:
    return sample_report()


@pytest.fixture(scope="module")
def page(report: ReportData) -> str:
    return render_html(report)


def test_the_three_plots_are_embedded_pngs(page: str) -> None:
    images = embedded_images(page)
    assert set(images) == PLOT_IDS
    assert all(png.startswith(PNG) for png in images.values())
    assert page.count('src="data:image/png;base64,') == 3
    for alt in ("Metric trend across versions", "Recall@n curve", "Latency histogram"):
        assert f'alt="{alt}"' in page


def test_headline_deltas_are_exact_and_coloured(page: str) -> None:
    rows = table_rows(page, "headline-metrics")
    assert [text for _, text in rows[0]] == [
        "metric",
        "value",
        "vs production (v3)",
        "vs previous (v4)",
    ]
    by_name = {row[0][1]: row[1:] for row in rows[1:]}
    # hit rate 0.95 vs 0.90 and 0.93: both improvements
    assert by_name["hit_rate_at_4"] == [
        ("num", "0.9500"),
        ("num better", "+0.0500"),
        ("num better", "+0.0200"),
    ]
    # mrr fell against production; no change against previous is neither green nor red
    assert by_name["mrr_at_4"][1:] == [("num worse", "-0.0200"), ("num same", "0.0000")]
    # latency: an increase is a regression, a decrease an improvement
    assert by_name["latency_p50_ms"][1:] == [("num worse", "+5.0000"), ("num better", "-5.0000")]
    # no baseline has recall: no delta, no colour
    assert by_name["recall_at_4"][1:] == [("num same", "n/a"), ("num same", "n/a")]


def test_headline_order_and_other_metrics(page: str, report: ReportData) -> None:
    names = [row[0][1] for row in table_rows(page, "headline-metrics")[1:]]
    assert names == report.headline()
    others = table_rows(page, "other-metrics")[1:]
    assert [[text for _, text in row] for row in others] == [
        ["answer_contains_reference", "0.6100"],
        ["questions", "178"],
    ]


def test_nan_shows_as_not_available(page: str) -> None:
    by_name = {row[0][1]: row for row in table_rows(page, "headline-metrics")[1:]}
    # faithfulness is NaN here, so even the production baseline (0.7) gives no delta
    assert [text for _, text in by_name["faithfulness"][1:]] == ["n/a", "n/a", "n/a"]
    assert 'faithfulness: <b class="na">n/a</b>' in page
    text = re.sub(r'data:image/png;base64,[^"]+', "", page)
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)


def test_untrusted_text_is_escaped(page: str) -> None:
    assert XSS not in page
    assert "<script" not in page
    assert "What is the capital of France? &lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_page_is_self_contained(page: str) -> None:
    assert "http://" not in page and "https://" not in page
    references = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page)
    assert references and all(ref.startswith("data:image/png;base64,") for ref in references)
    assert "<link" not in page and "@import" not in page and "url(" not in page


def test_config_dataset_and_run_are_shown(page: str, report: ReportData) -> None:
    for text in (
        "<th>chunking strategy</th><td>recursive</td>",
        "<th>chunk size</th><td>800</td>",
        "<th>chunk overlap</th><td>100</td>",
        "<th>retrieval mode</th><td>hybrid</td>",
        "<th>k</th><td>4</td>",
        "<th>fusion</th><td>weighted</td>",
        "<th>embedder</th><td>sentence-transformers/all-MiniLM-L6-v2</td>",
        "<th>generator</th><td>extractive</td>",
        "<summary>Full config (JSON)</summary>",
        "<th>digest</th><td><code>3f2a9c81d4e5b6a70000ffff</code></td>",
        "<th>questions</th><td>178</td>",
        "<th>source</th><td>data/sample/eval.jsonl</td>",
        report.run_id,
        report.created,
        "Evaluation report: rag-model version 5",
    ):
        assert text in page


def test_worst_questions_list_what_was_retrieved(page: str) -> None:
    assert page.count('<article class="card">') == 2
    assert "<li>Paris</li><li>The capital is Paris</li>" in page
    assert '<tr class="relevant">' in page and page.count('<tr class="relevant">') == 1
    assert "Les Misérables" in page and "doc-zola" in page
    shortened = re.search(r'<td class="excerpt">(Paris is the capital[^<]*)</td>', page)
    assert shortened and len(shortened.group(1)) <= 301 and shortened.group(1).endswith("…")


def test_at_most_ten_worst_questions(report: ReportData) -> None:
    many = dataclasses.replace(report, worst=report.worst[1:] * 12)
    assert render_html(many).count('<article class="card">') == 10


def test_missing_plot_data_says_not_enough_data(report: ReportData) -> None:
    bare = dataclasses.replace(report, trend=[], recall_curve={}, latencies_ms=[], baselines=[])
    page = render_html(bare)
    assert "<img" not in page
    for plot_id in PLOT_IDS:
        assert f'id="{plot_id}-empty"' in page
    assert page.count("not enough data") == 3


def test_a_run_without_a_version_is_titled_by_run(report: ReportData) -> None:
    page = render_html(dataclasses.replace(report, version=None))
    assert "Evaluation report: rag-model run 01234567" in page


def test_markdown_summary_has_the_headline_table_with_deltas(report: ReportData) -> None:
    text = render_markdown(report)
    assert text.startswith("# Evaluation report: rag-model version 5\n")
    assert "| metric | value | vs production (v3) | vs previous (v4) |" in text
    assert "| hit_rate_at_4 | 0.9500 | +0.0500 better | +0.0200 better |" in text
    assert "| mrr_at_4 | 0.8000 | -0.0200 worse | 0.0000 |" in text
    assert "| latency_p50_ms | 25 | +5.0000 worse | -5.0000 better |" in text
    assert "| faithfulness | n/a | n/a | n/a |" in text
    assert "chunking strategy: recursive" in text and "retrieval mode: hybrid" in text
    assert "178 questions, digest `3f2a9c81d4e5`" in text
    assert "\\<script\\>alert(1)\\</script\\>" in text and XSS not in text
    assert "doc-lyon, **doc-paris**" in text


@pytest.mark.parametrize(
    ("delta", "text"),
    [(0.95 - 0.90, "+0.0500"), (-0.012, "-0.0120"), (-0.00001, "0.0000"), (float("nan"), "n/a")],
)
def test_format_delta(delta: float, text: str) -> None:
    assert format_delta(delta) == text


def test_delta_class_knows_lower_is_better() -> None:
    assert delta_class("hit_rate_at_4", 0.01) == "better"
    assert delta_class("latency_p95_ms", 0.01) == "worse"
    assert delta_class("latency_p95_ms", -3.0) == "better"
    assert delta_class("mrr_at_4", 0.0) == delta_class("mrr_at_4", None) == "same"
    assert format_value(1.0) == "1.0000" and format_value(None) == "n/a"


def test_excerpt_cuts_at_a_word() -> None:
    assert excerpt("short") == "short"
    assert excerpt("aaaa bbbb cccc", limit=11) == "aaaa bbbb…"
    assert excerpt("x" * 20, limit=10) == "x" * 10 + "…"


def test_plots_skip_empty_input_and_draw_a_single_point() -> None:
    assert plots.metric_trend([], ["hit_rate_at_4"]) is None
    assert plots.metric_trend([VersionPoint("1", {"mrr_at_4": 0.5})], ["hit_rate_at_4"]) is None
    assert plots.recall_curve({}) is None
    assert plots.latency_histogram([]) is None
    single = plots.metric_trend([VersionPoint("1", {"hit_rate_at_4": 0.5})], ["hit_rate_at_4"])
    assert single is not None and single.startswith(PNG)
    assert (plots.latency_histogram([12.5]) or b"").startswith(PNG)


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_headless_chromium_renders_the_report_with_its_plots(tmp_path: Path, page: str) -> None:
    from PIL import Image  # matplotlib's own dependency

    html = tmp_path / "report.html"
    html.write_text(page, encoding="utf-8")
    screenshot = tmp_path / "report.png"
    _chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1280,2400", html.as_uri())
    dom = _chromium(tmp_path, "--dump-dom", html.as_uri())
    for plot_id in PLOT_IDS:
        assert f'<img id="{plot_id}" src="data:image/png;base64,' in dom
    assert "<script" not in dom

    pixels = Image.open(screenshot).convert("RGB")
    assert pixels.size == (1280, 2400)
    colors = pixels.getcolors(maxcolors=1 << 24) or []
    assert len(colors) > 500  # text, tables and plots, not a blank or error page
    white = sum(count for count, rgb in colors if min(rgb) >= 250)
    assert white < 0.9 * 1280 * 2400
    # the latency histogram's bars (#56B4E9) only appear if the embedded PNGs were decoded
    bars = sum(count for count, rgb in colors if _near(rgb, (0x56, 0xB4, 0xE9)))
    assert bars > 2000


def _chromium(profile_root: Path, *args: str) -> str:
    completed = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            # a profile of its own: no state shared with other runs or with a user's browser
            f"--user-data-dir={profile_root / 'chromium-profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout


def _near(rgb: tuple[int, int, int], target: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(rgb, target, strict=True))
