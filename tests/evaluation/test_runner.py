"""The evaluation runner on a real (hash-embedded) Chroma snapshot of the sample corpus."""

from __future__ import annotations

import math

import pytest

from evaluation.answer_metrics import AnswerCase, OfflineAnswerMetrics, strip_citations
from evaluation.dataset import EvalExample, load_eval_set
from evaluation.runner import EvalResult, Prediction, evaluate, predict_in_process
from rag_model.build import build_snapshot
from rag_model.config import RagConfig
from rag_model.embedders import HashEmbedder
from rag_model.pipeline import RagPipeline
from tests.conftest import FAKE_CONFIG, SAMPLE_CORPUS, SAMPLE_EVAL


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> RagPipeline:
    config = RagConfig.from_dict(FAKE_CONFIG)
    root = tmp_path_factory.mktemp("eval")
    build_snapshot(config, SAMPLE_CORPUS, root / "index")
    return RagPipeline.from_snapshot(config, root / "index")


@pytest.fixture(scope="module")
def examples() -> list[EvalExample]:
    examples = load_eval_set(SAMPLE_EVAL, limit=20).examples
    missing = EvalExample("nothing", "What is the airspeed of a swallow?", [], ["no-such-doc"])
    return [*examples, missing]


@pytest.fixture(scope="module")
def result(pipeline: RagPipeline, examples: list[EvalExample]) -> EvalResult:
    return evaluate(pipeline, examples, k=3)


def test_every_metric_is_logged_under_its_name(result: EvalResult) -> None:
    expected = {
        "hit_rate_at_3", "recall_at_3", "mrr_at_3", "ndcg_at_10", "map_at_10",
        "context_recall", "context_precision", "rouge_l", "exact_match", "string_present",
        "semantic_similarity", "contains_reference", "questions",
        "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
    }  # fmt: skip
    assert set(result.metrics) == expected
    assert result.metrics["questions"] == 21
    for name, value in result.metrics.items():
        if not name.startswith(("latency", "questions")):
            assert 0.0 <= value <= 1.0, name


def test_rows_carry_sources_and_per_question_scores(result: EvalResult) -> None:
    row = result.rows[0]
    assert row["question"] == "In what country is Normandy located?"
    assert len(row["sources"]) == 3 and len(row["ranked_document_ids"]) >= 3
    assert {"document_id", "chunk_id", "score", "relevant", "text"} <= set(row["sources"][0])
    assert {"hit_rate_at_3", "ndcg_at_10", "rouge_l", "latency_ms"} <= set(row["scores"])
    assert len(result.latencies_ms) == 21
    assert sorted(result.recall_curve) == list(range(1, 11))


def test_worst_questions_put_retrieval_misses_first(result: EvalResult) -> None:
    ranked = result.worst(21)
    hits = [row["scores"]["hit_rate_at_3"] for row in ranked]
    assert hits == sorted(hits) and hits[0] == 0.0 and hits[-1] == 1.0
    misses = {row["id"] for row in ranked if row["scores"]["hit_rate_at_3"] == 0.0}
    assert "nothing" in misses
    assert len(result.worst(3)) == 3


def test_offline_answer_metrics_on_known_cases() -> None:
    metrics = OfflineAnswerMetrics(HashEmbedder())
    case = AnswerCase(
        question="Where is Normandy?",
        answer="Normandy is in France [1].",
        retrieved_contexts=["Normandy is a region in France.", "Unrelated text about steam."],
        reference_answers=["Spain", "France"],
        reference_contexts=["Normandy is a region in France."],
    )
    scores = metrics.score(case)
    assert scores["contains_reference"] == 1.0
    assert scores["string_present"] == 1.0  # best of the references counts
    assert scores["exact_match"] == 0.0
    assert scores["rouge_l"] == pytest.approx(2 / 5)  # "France" in a 4-word answer
    assert scores["context_recall"] == 1.0
    assert scores["context_precision"] == 0.5  # one of the two retrieved chunks covers it
    none = metrics.score(AnswerCase("q", "a", [], [], []))
    assert all(math.isnan(none[name]) for name in ("rouge_l", "context_recall"))


def test_citations_are_not_part_of_the_answer() -> None:
    assert strip_citations("In 1066 [1], then [12].") == "In 1066, then."


def test_a_predictor_without_latencies_gives_the_same_scores_and_no_latency_metrics(
    pipeline: RagPipeline, examples: list[EvalExample], result: EvalResult
) -> None:
    in_process = predict_in_process(pipeline)

    def batch_predictor(questions, k, depth):  # what Spark batch scoring reports
        return [Prediction(p.answer, p.ranking) for p in in_process(questions, k, depth)]

    batch = evaluate(pipeline, examples, k=3, predictor=batch_predictor)

    timed = {name for name in result.metrics if name.startswith("latency_")}
    assert timed == {"latency_p50_ms", "latency_p95_ms", "latency_p99_ms"}
    assert batch.metrics == pytest.approx(
        {name: value for name, value in result.metrics.items() if name not in timed},
        nan_ok=True,
    )
    assert batch.latencies_ms == []
    assert all("latency_ms" not in row["scores"] for row in batch.rows)
    assert [row["answer"] for row in batch.rows] == [row["answer"] for row in result.rows]
