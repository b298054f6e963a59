"""Retrieval metrics (ranx, document level), SQuAD containment and latency percentiles."""

import math

import pytest

from evaluation.metrics import contains_reference, latency_percentiles, normalize_answer
from evaluation.retrieval_metrics import ranked_documents, retrieval_scores


def test_retrieval_scores_per_question_and_mean() -> None:
    scores = retrieval_scores([["a", "b"], ["c"], ["x", "y", "d"]], [["b"], ["z"], ["d", "e"]], k=2)
    assert [q["hit_rate_at_2"] for q in scores.per_question] == [1.0, 0.0, 0.0]
    assert [q["mrr_at_2"] for q in scores.per_question] == [0.5, 0.0, 0.0]
    assert scores.means["hit_rate_at_2"] == pytest.approx(1 / 3)
    # d is third of 2 relevant: recall@10 is 1/2; nDCG and MAP see it beyond k
    assert scores.per_question[2]["map_at_10"] == pytest.approx((1 / 3) / 2)
    assert scores.per_question[0]["ndcg_at_10"] == pytest.approx(1 / math.log2(3))
    assert scores.recall_curve[1] == 0.0
    assert scores.recall_curve[3] == pytest.approx((1 + 0 + 0.5) / 3)


def test_per_question_values_stay_in_question_order_past_ten_questions() -> None:
    # ranx orders queries by id; "10" sorts before "2" unless ids are padded
    rankings = [["hit"] if i % 3 == 0 else ["miss"] for i in range(25)]
    scores = retrieval_scores(rankings, [["hit"]] * 25, k=1)
    assert [q["hit_rate_at_1"] for q in scores.per_question] == [
        1.0 if i % 3 == 0 else 0.0 for i in range(25)
    ]


def test_documents_rank_where_their_first_chunk_ranks() -> None:
    assert ranked_documents(["a", "a", "b", "a", "c"]) == ["a", "b", "c"]
    scores = retrieval_scores([["a", "a", "b"]], [["b"]], k=2)
    assert scores.per_question[0]["mrr_at_2"] == 0.5  # b is the second *document*


def test_questions_without_relevant_ids_are_left_out_of_the_mean() -> None:
    scores = retrieval_scores([["a"], ["b"], []], [["a"], [], ["c"]], k=1)
    assert scores.means["hit_rate_at_1"] == 0.5
    assert math.isnan(scores.per_question[1]["hit_rate_at_1"])
    assert scores.per_question[2]["hit_rate_at_1"] == 0.0  # nothing retrieved is a miss


def test_no_relevant_ids_anywhere_gives_nan_not_an_error() -> None:
    scores = retrieval_scores([["a"]], [[]], k=4)
    assert math.isnan(scores.means["ndcg_at_10"])
    assert scores.recall_curve == {}


def test_contains_reference_normalizes_like_squad() -> None:
    assert normalize_answer("The Normans, in 1066!") == "normans in 1066"
    assert contains_reference("It was William the Conqueror.", ["William the Conqueror"]) == 1.0
    assert contains_reference("no idea", ["France"]) == 0.0
    assert contains_reference("Francesca", ["France"]) == 0.0  # whole words only
    assert math.isnan(contains_reference("anything", []))


def test_latency_percentiles() -> None:
    result = latency_percentiles([float(v) for v in range(1, 101)])
    assert result["latency_p50_ms"] == pytest.approx(50.5)
    assert result["latency_p99_ms"] == pytest.approx(99.01)
