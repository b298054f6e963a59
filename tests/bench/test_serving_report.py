"""The serving benchmark's logic on made-up numbers: run order, medians, targets, tables.

No servers: bench/serving_report.py and the option handling of bench/serving_vs_mlflow.py.
"""

from __future__ import annotations

import itertools

import click
import pytest
from click.testing import CliRunner

from bench.serving_report import (
    Ceiling,
    Level,
    Trial,
    checks,
    medians,
    per_server,
    report,
    run_order,
)
from bench.serving_vs_mlflow import main, parse_clients, question_stream, resolve

LEVELS = [1, 4, 16, 64]


def trial(server: str, repeat: int, rates: dict[int, float], p99: float = 100.0) -> Trial:
    return Trial(
        server,
        repeat,
        start_seconds=3.0 + repeat,
        tree_rss=1000.0 + repeat,
        levels={c: Level(rate=r, p50=p99 / 2, p99=p99) for c, r in rates.items()},
        load_average=1.5,
        client_cpu=0.1,
    )


def fake_trials() -> list[Trial]:
    """Three runs each, in run order; (a) is 4x (c) and 1.4x (b), with a lower p99."""
    rates, p99s, factors = (
        {"a": 140, "b": 100, "c": 35},
        {"a": 50, "b": 60, "c": 400},
        (1, 0.9, 1.1),
    )
    return [
        trial(key, repeat, {c: rates[key] * factors[repeat] for c in LEVELS}, p99=p99s[key])
        for repeat, key in run_order(["a", "b", "c"], 3)
    ]


def test_servers_run_in_alternating_order() -> None:
    assert run_order(["a", "b", "c"], 3) == [
        (0, "a"), (0, "b"), (0, "c"),
        (1, "c"), (1, "b"), (1, "a"),
        (2, "a"), (2, "b"), (2, "c"),
    ]  # fmt: skip
    assert run_order(["a"], 2) == [(0, "a"), (1, "a")]


def test_medians_are_per_server_and_level_and_errors_add_up() -> None:
    trials = [
        Trial("a", 0, levels={16: Level(rate=10, p50=5, p99=50, errors=1)}),
        Trial("a", 1, levels={16: Level(rate=30, p50=9, p99=90)}),
        Trial("a", 2, levels={16: Level(rate=20, p50=7, p99=70, errors=2)}),
    ]
    median = medians(trials)["a"][16]
    assert (median.rate, median.p50, median.p99) == (20, 7, 70)
    assert (median.rate_min, median.rate_max, median.errors, median.trials) == (10, 30, 3, 3)
    starts = per_server([trial("a", 0, {}), trial("a", 2, {})], lambda t: t.start_seconds)
    assert starts == {"a": 4.0}  # median of 3.0 and 5.0


def test_checks_mark_each_target_pass_or_miss() -> None:
    table = medians(fake_trials())
    rows = {(row.name, row.clients): row for row in checks(table, {"a": 4.5}, LEVELS, 160.0)}
    assert rows[("(a)/(c) req/s", "16")].value == pytest.approx(4.0)
    assert rows[("(a)/(c) req/s", "16")].passed is True
    assert rows[("(a)/(c) p99", "16")].value == pytest.approx(0.125)
    assert rows[("(a)/(c) p99", "16")].passed is True
    assert rows[("(a)/(b) req/s", "16")].passed is True  # 1.4 >= 1.3
    assert rows[("(a)/(b) req/s", "1")].passed is True  # 1.4 >= 1.0
    # p99 50 against 60 is 0.83x: faster, but not the 1.3x (<= 0.77x) asked at 16 clients
    assert rows[("(a)/(b) p99", "16")].passed is False
    assert rows[("(a)/(b) p99", "16")].target == "<= 0.77x"
    assert rows[("(a)/(b) p99", "4")].passed is True
    assert rows[("(a) start to first answer", "-")].passed is False  # 4.5 s > 4 s
    assert rows[("(a) req/s / in-process ceiling", "16")].value == pytest.approx(140 / 160)
    assert rows[("errors, all servers and runs", "all")].passed is True


def test_checks_skip_what_the_run_did_not_measure() -> None:
    table = medians([t for t in fake_trials() if t.server == "a"])
    names = {row.name for row in checks(table, {}, [1], None)}
    assert names == {"errors, all servers and runs"}


def test_report_prints_the_tables_with_verdicts() -> None:
    ceilings = [Ceiling(90, 1.0, 2), Ceiling(80, 1.0, 2), Ceiling(70, 1.0, 2)]
    text = report(fake_trials(), LEVELS, ceilings, ["head"])
    lines = text.splitlines()
    assert lines[0] == "head"
    ours = "| (a) ours, default config, gunicorn | 16 | 140.0 | 126.0-154.0 | 25.0 | 50.0 | 0 |"
    seed = "| (c) seed-style pyfunc, mlflow models serve | 1 | 35.0 | 31.5-38.5 | 200.0 | 400.0 |"
    assert ours in lines
    assert seed + " 0 |" in lines
    assert "| (a)/(c) req/s | 16 | 4.00x | >= 3.00x | pass |" in lines
    assert "| (a)/(b) p99 | 16 | 0.83x | <= 0.77x | **miss** |" in lines
    assert "| (a) start to first answer | - | 4.00 s | <= 4.00 s | pass |" in lines
    assert "| errors, all servers and runs | all | 0 | <= 0 | pass |" in lines
    assert any(line.startswith("In-process ceiling: single-thread") for line in lines)
    assert "80.0 questions/s (median of 3, one before each round of runs: 90.0, 80.0, 70.0)" in text
    assert "x 2 cores = 160.0 questions/s" in text
    runs = [line for line in lines if line.startswith("| ") and line.endswith(" | 1.50 | 0.10 |")]
    assert [line.split(" | ")[1] for line in runs] == list("abccbaabc")


def test_report_names_the_errors_it_counted() -> None:
    failing = Trial(
        "b",
        0,
        levels={4: Level(rate=1, p50=1, p99=1, errors=2, error_kinds={"HTTP 503": 2})},
    )
    text = report([failing], [4])
    assert "2 errors {'HTTP 503': 2}" in text
    assert "| errors, all servers and runs | all | 2 | <= 0 | **miss** |" in text


def test_question_stream_never_repeats_a_question() -> None:
    asked = list(itertools.islice(question_stream(["q1?", "q2?"]), 6))
    assert asked == ["q1?", "q2?", "q1? (2)", "q2? (2)", "q1? (3)", "q2? (3)"]


def test_quick_and_full_defaults_and_explicit_options() -> None:
    assert resolve(True) == {"paragraphs": 200, "seconds": 2.0, "repeats": 1}
    assert resolve(False, seconds=None) == {"paragraphs": 2000, "seconds": 15.0, "repeats": 3}
    assert resolve(True, repeats=2)["repeats"] == 2
    with pytest.raises(click.BadParameter, match="must be > 0, got 0"):
        resolve(False, repeats=0)


def test_client_levels_are_parsed_and_checked() -> None:
    assert parse_clients("1,4,16,64") == [1, 4, 16, 64]
    with pytest.raises(click.BadParameter, match="must be integers > 0"):
        parse_clients("0,4")
    result = CliRunner().invoke(main, ["--clients", "1,x"])
    assert result.exit_code != 0
    assert "must be integers separated by commas, got '1,x'" in result.output
