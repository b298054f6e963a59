"""A hand-built ReportData shared by the report renderer tests."""

from __future__ import annotations

import base64
import math
import random
from html.parser import HTMLParser

from evaluation.report.data import (
    Baseline,
    QuestionRow,
    ReportData,
    RetrievedSource,
    VersionPoint,
)

XSS = "<script>alert(1)</script>"
LONG_CHUNK = "Paris is the capital and most populous city of France. " * 12


def sample_report() -> ReportData:
    """Version 5 against production (v3) and the previous version (v4) on the same dataset."""
    rng = random.Random(7)
    metrics = {
        "hit_rate_at_4": 0.95,
        "mrr_at_4": 0.80,
        "recall_at_4": 0.90,
        "ndcg_at_10": 0.85,
        "faithfulness": math.nan,
        "latency_p50_ms": 25.0,
        "latency_p95_ms": 60.0,
        "answer_contains_reference": 0.61,
        "questions": 178.0,
    }
    return ReportData(
        model_name="rag-model",
        version="5",
        run_id="0123456789abcdef0123456789abcdef",
        created="2025-01-15T10:30:00+00:00",
        config={
            "chunking": {"strategy": "recursive", "chunk_size": 800, "chunk_overlap": 100},
            "embedding": {"model": "sentence-transformers/all-MiniLM-L6-v2"},
            "retrieval": {"mode": "hybrid", "k": 4, "fusion": "weighted"},
            "generation": {"generator": "extractive"},
        },
        dataset={
            "name": "sample",
            "source": "data/sample/eval.jsonl",
            "digest": "3f2a9c81d4e5b6a70000ffff",
            "questions": 178,
        },
        metrics=metrics,
        baselines=[
            Baseline(
                "production",
                "3",
                {
                    "hit_rate_at_4": 0.90,
                    "mrr_at_4": 0.82,
                    "latency_p50_ms": 20.0,
                    "faithfulness": 0.7,
                },
            ),
            Baseline(
                "previous", "4", {"hit_rate_at_4": 0.93, "mrr_at_4": 0.80, "latency_p50_ms": 30.0}
            ),
        ],
        trend=[
            VersionPoint("3", {"hit_rate_at_4": 0.90, "mrr_at_4": 0.82, "latency_p50_ms": 20.0}),
            VersionPoint("4", {"hit_rate_at_4": 0.93, "mrr_at_4": 0.80, "latency_p50_ms": 30.0}),
            VersionPoint("5", {"hit_rate_at_4": 0.95, "mrr_at_4": 0.80, "latency_p50_ms": 25.0}),
        ],
        recall_curve={1: 0.55, 2: 0.72, 4: 0.90, 8: 0.96, 16: 0.99},
        latencies_ms=[rng.lognormvariate(3.2, 0.35) for _ in range(178)],
        worst=[
            QuestionRow(
                id="q-17",
                question=f"What is the capital of France? {XSS}",
                answer="Lyon is a city in France [1].",
                reference_answers=["Paris", "The capital is Paris"],
                relevant_ids=["doc-paris"],
                sources=[
                    RetrievedSource("doc-lyon", "Lyon is a city in France.", 0.8123, False),
                    RetrievedSource("doc-paris", LONG_CHUNK, 0.7012, True),
                ],
                scores={"hit": 1.0, "reciprocal_rank": 0.5, "faithfulness": math.nan},
            ),
            QuestionRow(
                id="q-42",
                question="Who wrote Les Misérables?",
                answer="I don't know.",
                reference_answers=["Victor Hugo"],
                relevant_ids=["doc-hugo"],
                sources=[RetrievedSource("doc-zola", "Émile Zola wrote Germinal.", 0.41, False)],
                scores={"hit": 0.0, "reciprocal_rank": 0.0, "faithfulness": math.nan},
            ),
        ],
    )


def table_rows(page: str, table_id: str) -> list[list[tuple[str, str]]]:
    """The rows of the table ``table_id`` in ``page``: ``(class, text)`` per cell."""
    parser = _TableParser(table_id)
    parser.feed(page)
    return parser.rows


def embedded_images(page: str) -> dict[str, bytes]:
    """``{img id: decoded bytes}`` for every ``<img>`` with a base64 PNG data URI."""
    parser = _ImageParser()
    parser.feed(page)
    return parser.images


class _TableParser(HTMLParser):
    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id = table_id
        self.inside = False
        self.cell: list[str] | None = None
        self.rows: list[list[tuple[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table":
            self.inside = attributes.get("id") == self.table_id
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = [attributes.get("class") or ""]
        elif tag == "br" and self.cell is not None:
            self.cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append((self.cell[0], " ".join("".join(self.cell[1:]).split())))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


class _ImageParser(HTMLParser):
    PREFIX = "data:image/png;base64,"

    def __init__(self) -> None:
        super().__init__()
        self.images: dict[str, bytes] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        src = attributes.get("src") or ""
        if tag == "img" and src.startswith(self.PREFIX):
            self.images[attributes.get("id") or ""] = base64.b64decode(src[len(self.PREFIX) :])
