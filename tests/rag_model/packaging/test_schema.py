"""Output rows <-> answers: what spark_udf hands back reads back into the same Answer."""

from __future__ import annotations

from rag_model.documents import RetrievedChunk
from rag_model.packaging.rows import answer_to_row, row_to_answer
from rag_model.pipeline import Answer


def test_a_row_reads_back_into_the_answer_it_was_made_from() -> None:
    answer = Answer(
        question="Who built the bridge?",
        answer="Brunel built it [1].",
        sources=[
            RetrievedChunk(
                id="c1",
                document_id="bridge.txt",
                text="Brunel built the suspension bridge in 1864.",
                score=0.75,
                metadata={"title": "Bridge", "chunk_index": 0, "fresh": True, "weight": 0.5},
                scores={"dense": 0.5, "lexical": 2.25, "fused": 0.75},
            )
        ],
        citations=["c1"],
        timings={"total_ms": 3.0},
    )

    back = row_to_answer(" Who built the bridge? ", answer_to_row(answer, include_sources=True))

    assert back == Answer(answer.question, answer.answer, answer.sources, answer.citations)


def test_a_row_without_sources_reads_back_with_none() -> None:
    row = {"answer": "I do not know.", "citations": None, "sources": None}

    assert row_to_answer("Why?", row) == Answer("Why?", "I do not know.", [], [])
