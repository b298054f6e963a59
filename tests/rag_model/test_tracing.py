"""The tracing seam with a recording fake tracer: span tree, content switch, no-op when off."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rag_model import tracing
from rag_model.build import build_snapshot
from rag_model.config import RagConfig
from rag_model.pipeline import RagPipeline
from tests.conftest import ANSWER_SPANS, FAKE_CONFIG, SAMPLE_CORPUS


@dataclass
class Recorded:
    name: str
    span_type: str
    parent: Recorded | None
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: Any = None
    attributes: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def set_inputs(self, inputs: Mapping[str, Any]) -> None:
        self.inputs.update(inputs)

    def set_outputs(self, outputs: Any) -> None:
        self.outputs = outputs

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value


class RecordingTracer:
    """Keeps every span with its parent: what an MLflow tracer would receive."""

    def __init__(self) -> None:
        self.spans: list[Recorded] = []
        self._open: list[Recorded] = []

    @contextmanager
    def trace(
        self,
        name: str,
        span_type: str,
        inputs: Mapping[str, Any] | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Iterator[Recorded]:
        recorded = Recorded(name, span_type, self._open[-1] if self._open else None)
        recorded.inputs.update(inputs or {})
        recorded.attributes.update(attributes or {})
        self.spans.append(recorded)
        self._open.append(recorded)
        try:
            yield recorded
        except Exception as exc:
            recorded.error = str(exc)
            raise
        finally:
            self._open.pop()

    def tree(self) -> list[tuple[str, str, str | None]]:
        return [(s.name, s.span_type, s.parent.name if s.parent else None) for s in self.spans]

    def named(self, name: str) -> Recorded:
        return next(s for s in self.spans if s.name == name)


@pytest.fixture(scope="module")
def hybrid_pipeline(tmp_path_factory: pytest.TempPathFactory) -> RagPipeline:
    config = RagConfig.from_dict(
        {
            **FAKE_CONFIG,
            "retrieval": {"mode": "hybrid", "k": 3},
            "generation": {"generator": "extractive"},
        }
    )
    root: Path = tmp_path_factory.mktemp("traced")
    build_snapshot(config, SAMPLE_CORPUS, root / "snapshot")
    return RagPipeline.from_snapshot(config, root / "snapshot")


@pytest.fixture
def recorder() -> Iterator[RecordingTracer]:
    tracer = RecordingTracer()
    tracing.enable_tracing(tracer)
    yield tracer
    tracing.disable_tracing()


def test_an_answer_is_one_tree_of_typed_spans(
    hybrid_pipeline: RagPipeline, recorder: RecordingTracer
) -> None:
    answer = hybrid_pipeline.answer("What is oxygen?", k=2)

    assert recorder.tree() == ANSWER_SPANS
    root = recorder.named("rag.answer")
    assert root.inputs == {"question": "What is oxygen?", "k": 2, "filter": None}
    assert root.outputs["answer"] == answer.answer
    assert root.outputs["citations"] == answer.citations
    documents = recorder.named("rag.retrieve").outputs
    assert [d["id"] for d in documents] == [s.id for s in answer.sources]
    first = documents[0]
    assert first["page_content"] == answer.sources[0].text
    assert first["metadata"]["doc_uri"] == answer.sources[0].document_id
    assert first["metadata"]["chunk_id"] == answer.sources[0].id
    assert {"dense", "lexical", "fused"} & set(first["metadata"])
    assert first["metadata"]["fused"] == round(answer.sources[0].scores["fused"], 6)
    chosen = recorder.named("rag.generate").outputs["chosen_sentences"]
    assert chosen and all(c["chunk_id"] in answer.citations for c in chosen)


def test_content_off_keeps_text_out_but_ids_and_scores_in(hybrid_pipeline: RagPipeline) -> None:
    tracer = RecordingTracer()
    tracing.enable_tracing(tracer, content=False)
    try:
        answer = hybrid_pipeline.answer("What is oxygen?", k=2)
    finally:
        tracing.disable_tracing()

    recorded = repr([(s.inputs, s.outputs, s.attributes) for s in tracer.spans])
    assert "What is oxygen?" not in recorded
    assert answer.answer[:40] not in recorded
    for source in answer.sources:
        assert source.text[:40] not in recorded
        assert source.id in recorded and source.document_id in recorded
    question = tracer.named("rag.answer").inputs["question"]
    assert question == f"[sha256:{tracing.digest('What is oxygen?')} 15 chars]"


def test_a_batch_is_one_trace_with_a_generation_per_question(
    hybrid_pipeline: RagPipeline, recorder: RecordingTracer
) -> None:
    hybrid_pipeline.answer_many(["What is oxygen?", "Who built the bridge?"], k=2)

    roots = [s for s in recorder.spans if s.parent is None]
    assert [r.name for r in roots] == ["rag.answer"]
    assert len(roots[0].inputs["questions"]) == 2
    assert [s.name for s in recorder.spans].count("rag.generate") == 2
    assert [s.name for s in recorder.spans].count("rag.retrieve.dense") == 1  # shared query
    assert len(recorder.named("rag.retrieve").outputs) == 2  # one document list per question


def test_use_tracer_overrides_the_global_tracer_for_one_block(
    hybrid_pipeline: RagPipeline, recorder: RecordingTracer
) -> None:
    with tracing.use_tracer(None):
        hybrid_pipeline.answer("What is oxygen?")
    assert recorder.spans == []
    other = RecordingTracer()
    with tracing.use_tracer(other):
        hybrid_pipeline.answer("What is oxygen?")
    assert recorder.spans == [] and other.spans[0].name == "rag.answer"


def test_errors_are_recorded_on_the_open_spans(
    hybrid_pipeline: RagPipeline, recorder: RecordingTracer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("index went away")

    monkeypatch.setattr(hybrid_pipeline.retriever.index, "query_many", broken)
    with pytest.raises(RuntimeError):
        hybrid_pipeline.answer("What is oxygen?")
    assert recorder.named("rag.retrieve.dense").error == "index went away"
    assert recorder.named("rag.answer").error == "index went away"


def test_off_is_a_shared_no_op() -> None:
    assert not tracing.is_tracing_enabled()
    first, second = tracing.span("a"), tracing.span("b", tracing.RETRIEVER, {"x": 1})
    assert first is second
    with first as span:
        span.set_outputs({"anything": 1})
        assert span is tracing.NULL_SPAN


def test_the_core_recording_tracer_hands_each_finished_trace_to_its_sink_once(
    hybrid_pipeline: RagPipeline,
) -> None:
    traces: list[list[tracing.SpanRecord]] = []
    with tracing.use_tracer(tracing.RecordingTracer(traces.append)):
        answer = hybrid_pipeline.answer("What is oxygen?", k=2)
        assert traces and len(traces) == 1  # handed over when the root closed
        hybrid_pipeline.answer("Who built the bridge?", k=2)

    assert len(traces) == 2
    spans = traces[0]
    names = [s.name for s in spans]
    assert [
        (s.name, s.span_type, names[s.parent] if s.parent is not None else None) for s in spans
    ] == [
        ("rag.answer", "CHAIN", None),
        ("rag.embed_query", "EMBEDDING", "rag.answer"),
        ("rag.retrieve", "RETRIEVER", "rag.answer"),
        ("rag.retrieve.dense", "RETRIEVER", "rag.retrieve"),
        ("rag.retrieve.lexical", "RETRIEVER", "rag.retrieve"),
        ("rag.retrieve.fuse", "RERANKER", "rag.retrieve"),
        ("rag.generate", "CHAIN", "rag.answer"),
    ]
    root = spans[0]
    assert root.inputs == {"question": "What is oxygen?", "k": 2, "filter": None}
    assert root.outputs["answer"] == answer.answer
    for span in spans:  # each step inside its parent's time
        assert 0 < span.start_ns <= span.end_ns
        if span.parent is not None:
            parent = spans[span.parent]
            assert parent.start_ns <= span.start_ns <= span.end_ns <= parent.end_ns
    assert spans[3].attributes["fetch_k"] >= 2
    assert traces[1][0].inputs["question"] == "Who built the bridge?"


def test_the_core_recording_tracer_records_errors_with_the_exception(
    hybrid_pipeline: RagPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("index went away")

    monkeypatch.setattr(hybrid_pipeline.retriever.index, "query_many", broken)
    traces: list[list[tracing.SpanRecord]] = []
    with tracing.use_tracer(tracing.RecordingTracer(traces.append)), pytest.raises(RuntimeError):
        hybrid_pipeline.answer("What is oxygen?")
    (spans,) = traces
    by_name = {s.name: s for s in spans}
    kind, message, stack = by_name["rag.retrieve.dense"].error  # type: ignore[misc]
    assert (kind, message) == ("RuntimeError", "index went away")
    assert "broken" in stack
    assert by_name["rag.answer"].error is not None
    assert by_name["rag.embed_query"].error is None
