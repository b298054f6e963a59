"""Retrieval and answer metrics: means and per-example scores."""

import math

import pytest

from evaluation.metrics import (
    answer_contains_reference,
    hit_rate,
    latency_percentiles,
    normalize_answer,
    reciprocal_rank,
)


def test_hit_rate_per_question_and_mean() -> None:
    result = hit_rate([["a", "b"], ["c"], ["d"]], [["b"], ["x"], ["d", "e"]])
    assert result.individual_scores == [1.0, 0.0, 1.0]
    assert result.score == pytest.approx(2 / 3)


def test_reciprocal_rank_ranks_documents_not_chunks() -> None:
    # two chunks of document a come first: b is the second *document*
    result = reciprocal_rank([["a", "a", "b"], ["c", "d"], ["e"]], [["b"], ["c"], ["z"]])
    assert result.individual_scores == [0.5, 1.0, 0.0]
    assert result.score == pytest.approx(0.5)


def test_questions_without_references_are_left_out_of_the_mean() -> None:
    result = hit_rate([["a"], ["b"]], [["a"], []])
    assert result.score == 1.0
    assert math.isnan(result.individual_scores[1])


def test_answer_contains_reference_normalizes_like_squad() -> None:
    assert normalize_answer("The Normans, in 1066!") == "normans in 1066"
    result = answer_contains_reference(
        ["It was William the Conqueror. [1]", "In 1066 [2]", "no idea"],
        [["William the Conqueror"], ["1066"], ["France"]],
    )
    assert result.individual_scores == [1.0, 1.0, 0.0]


def test_partial_words_do_not_count_as_containing() -> None:
    assert answer_contains_reference(["Francesca"], [["France"]]).individual_scores == [0.0]


def test_latency_percentiles() -> None:
    result = latency_percentiles([float(v) for v in range(1, 101)])
    assert result["latency_p50_ms"] == pytest.approx(50.5)
    assert set(result) == {"latency_p50_ms", "latency_p95_ms", "latency_p99_ms"}


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError):
        hit_rate([["a"]], [["a"], ["b"]])
