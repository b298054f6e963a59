"""The evaluation's predict_fn times the answer alone and still shows how it was made.

The pipeline's spans are recorded while the answer is timed and become MLflow spans of the
question's trace afterwards: the trace has the same span tree as with live spans, and the
latency does not include MLflow's span bookkeeping.
"""

from __future__ import annotations

import contextlib
import time

import mlflow
import pytest
from mlflow.entities import LiveSpan

from evaluation.genai import make_predict_fn
from rag_model import tracing
from rag_model.pipeline import RagPipeline
from tests.conftest import ANSWER_SPANS, span_tree

pytestmark = pytest.mark.integration

SLOW_SPAN_SECONDS = 0.5  # what giving an MLflow span its inputs costs below: far above an answer


@pytest.fixture(scope="module")
def pipeline(hybrid_fake_pipeline: RagPipeline) -> RagPipeline:
    return hybrid_fake_pipeline


def test_the_trace_has_the_pipelines_span_tree_and_the_latency_leaves_mlflow_out(
    pipeline: RagPipeline, tracking_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow.set_experiment("genai-latency")
    set_inputs = LiveSpan.set_inputs
    slow: list[str] = []

    def slow_set_inputs(self: LiveSpan, inputs: object) -> None:  # MLflow's span bookkeeping
        slow.append(self.name)
        time.sleep(SLOW_SPAN_SECONDS)
        set_inputs(self, inputs)

    monkeypatch.setattr(LiveSpan, "set_inputs", slow_set_inputs)
    predict = make_predict_fn(pipeline, k=2, depth=10, guard=contextlib.nullcontext(), failures=[])
    outputs = predict("How do plants make oxygen?")
    # the pipeline's spans were given their inputs (slowly), but not while the answer was timed
    assert "rag.answer" in slow
    assert outputs["latency_ms"] < SLOW_SPAN_SECONDS * 1000

    trace = mlflow.get_trace(mlflow.get_last_active_trace_id(), flush=True)
    assert span_tree(trace) == [
        ("rag_evaluation_answer", "CHAIN", None),
        ("rag.answer", "CHAIN", "rag_evaluation_answer"),
        *ANSWER_SPANS[1:],
    ]
    answer = trace.data.spans[1]
    # the replayed span keeps the recorded times: the answer's, not the slow replay's
    assert (answer.end_time_ns - answer.start_time_ns) / 1e6 <= outputs["latency_ms"]
    assert answer.inputs["question"] == "How do plants make oxygen?"
    documents = next(s for s in trace.data.spans if s.name == "rag.retrieve").outputs
    assert documents[0]["metadata"]["doc_uri"] and documents[0]["page_content"]
    assert trace.data.spans[0].status.status_code == "OK"
    tracing.disable_tracing()


def test_a_failing_answer_is_replayed_as_an_error_span(
    pipeline: RagPipeline, tracking_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow.set_experiment("genai-latency-error")

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("generator down")

    monkeypatch.setattr(pipeline, "_generate", broken)
    failures: list[BaseException] = []
    predict = make_predict_fn(
        pipeline, k=2, depth=10, guard=contextlib.nullcontext(), failures=failures
    )
    with pytest.raises(RuntimeError, match="generator down"):
        predict("How do plants make oxygen?")
    assert [type(f) for f in failures] == [RuntimeError]
    trace = mlflow.get_trace(mlflow.get_last_active_trace_id(), flush=True)
    answer = next(s for s in trace.data.spans if s.name == "rag.answer")
    assert answer.status.status_code == "ERROR"
    assert "generator down" in answer.status.description
    assert any(e.name == "exception" for e in answer.events)
