"""A micro-batch's trace cut into one trace per request (``serving.tracing.split_batch``)."""

from __future__ import annotations

from rag_model import tracing
from serving.tracing import split_batch


def batch_trace() -> list[tracing.SpanRecord]:
    """What a hybrid pipeline records for answer_many over two questions."""
    traces: list[list[tracing.SpanRecord]] = []
    span = tracing.span
    with tracing.use_tracer(tracing.RecordingTracer(traces.append)):
        with span("rag.answer") as root:
            root.set_inputs({"questions": ["q0", "q1"], "k": 2, "filter": None})
            with span("rag.embed_query", tracing.EMBEDDING) as embed:
                embed.set_inputs({"texts": ["q0", "q1"]})
            with span("rag.retrieve", tracing.RETRIEVER) as retrieve:
                retrieve.set_inputs({"query": ["q0", "q1"], "k": 2})
                with span("rag.retrieve.dense", tracing.RETRIEVER) as dense:
                    dense.set_outputs([[{"chunk_id": "a"}], [{"chunk_id": "b"}]])
                for question in ("q0", "q1"):
                    with span("rag.retrieve.lexical") as lexical:
                        lexical.set_outputs([{"chunk_id": f"lex-{question}"}])
                    with span("rag.retrieve.fuse", tracing.RERANKER) as fuse:
                        fuse.set_outputs([{"chunk_id": f"fused-{question}"}])
                retrieve.set_outputs([[{"id": "a"}], [{"id": "b"}]])
            for question in ("q0", "q1"):
                with span("rag.generate") as generate:
                    generate.set_inputs({"question": question, "context_ids": ["x", "y"]})
                    generate.set_outputs({"answer": f"answer to {question}"})
            root.set_outputs([{"answer": "answer to q0"}, {"answer": "answer to q1"}])
    return traces[0]


def test_each_request_keeps_its_question_its_answer_and_the_shared_steps() -> None:
    spans = batch_trace()
    second = split_batch(spans, 1, 2)

    names = [s.name for s in second]
    assert [(s.name, names[s.parent] if s.parent is not None else None) for s in second] == [
        ("rag.answer", None),
        ("rag.embed_query", "rag.answer"),
        ("rag.retrieve", "rag.answer"),
        ("rag.retrieve.dense", "rag.retrieve"),
        ("rag.retrieve.lexical", "rag.retrieve"),
        ("rag.retrieve.fuse", "rag.retrieve"),
        ("rag.generate", "rag.answer"),
    ]
    by_name = {s.name: s for s in second}
    assert by_name["rag.answer"].inputs == {"question": "q1", "k": 2, "filter": None}
    assert by_name["rag.answer"].outputs == {"answer": "answer to q1"}
    assert by_name["rag.answer"].attributes["batch_size"] == 2
    assert by_name["rag.embed_query"].inputs == {"texts": "q1"}
    assert by_name["rag.retrieve"].outputs == [{"id": "b"}]
    assert by_name["rag.retrieve.dense"].outputs == [{"chunk_id": "b"}]
    assert by_name["rag.retrieve.lexical"].outputs == [{"chunk_id": "lex-q1"}]
    assert by_name["rag.retrieve.fuse"].outputs == [{"chunk_id": "fused-q1"}]
    generate = by_name["rag.generate"]
    assert generate.outputs == {"answer": "answer to q1"}
    assert generate.inputs["context_ids"] == ["x", "y"]  # not one per question: kept whole
    assert by_name["rag.answer"].start_ns == spans[0].start_ns  # the batch's timing

    first = split_batch(spans, 0, 2)
    assert first[0].inputs["question"] == "q0" and first[-1].outputs["answer"] == "answer to q0"
    assert spans[0].inputs["questions"] == ["q0", "q1"]  # the batch's records are left as they were
