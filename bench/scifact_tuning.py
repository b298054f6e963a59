"""SciFact retrieval levers chosen on the train queries, reported on the test queries.

Usage: python -m bench.scifact_tuning [--data ../shared/data/scifact] [--cache DIR]
SciFact ships judgements for 809 train queries (qrels/train.tsv) and 300 test queries
(qrels/test.tsv). Every lever here is scored on train; the test column is printed beside it
only to report the chosen rows, never to choose. The signals are computed from the cached
vectors (``bench.retrieval_data``; ``warm --dataset scifact`` first, sentences included) with
the same arithmetic as ``rag_model.retrieval`` (top ``fetch`` per side, min-max normalised,
weighted sum; RRF; a document ranks as its best chunk), so a row can be turned into a
``RagConfig`` and checked end to end with ``bench.beir_scifact``.

Signals: dense = chunk cosine; sentence = a chunk's best sentence cosine (parent-document
search); bm25 = the product's BM25 over chunks, or bm25s variants (method, k1, b).
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import click
import numpy as np

from bench.retrieval_data import (
    cached_embedder,
    embed_in_slices,
    evaluate_run,
    read_split,
    shared_data,
)
from rag_model.chunking import chunk_documents
from rag_model.config import RagConfig
from rag_model.ingestion import load_documents
from rag_model.lexical import _stemmer
from rag_model.sentences import split_sentences

Signal = dict[int, float]  # chunk row -> score, the top ``fetch`` of one side


def top(scores: np.ndarray, k: int) -> Signal:
    """The ``k`` best rows of ``scores`` as {row: score}."""
    k = min(k, len(scores))
    rows = np.argpartition(-scores, k - 1)[:k]
    return {int(r): float(scores[r]) for r in rows}


def min_max(signal: Signal) -> Signal:
    """Scores scaled to [0, 1] (all ones when equal), as ``rag_model.retrieval`` does."""
    if not signal:
        return {}
    low, high = min(signal.values()), max(signal.values())
    if high == low:
        return dict.fromkeys(signal, 1.0)
    return {row: (s - low) / (high - low) for row, s in signal.items()}


def weighted(signals: Sequence[Signal], weights: Sequence[float]) -> Signal:
    """Weighted sum of min-max normalised signals (absent from a signal: 0 there)."""
    fused: Signal = {}
    for signal, weight in zip(signals, weights, strict=True):
        if weight == 0:
            continue
        for row, s in min_max(signal).items():
            fused[row] = fused.get(row, 0.0) + weight * s
    return fused


def rrf(signals: Sequence[Signal], constant: int) -> Signal:
    """Reciprocal rank fusion."""
    fused: Signal = {}
    for signal in signals:
        for rank, row in enumerate(sorted(signal, key=lambda r: (-signal[r], r)), start=1):
            fused[row] = fused.get(row, 0.0) + 1.0 / (constant + rank)
    return fused


class Corpus:
    """Chunks, their documents, and the per-chunk signals for a set of queries."""

    def __init__(self, folder: Path, cache: Path, threads: int, sentences: bool) -> None:
        config = RagConfig()
        corpus = load_documents(folder / "corpus.jsonl")
        self.chunks = chunk_documents(corpus.documents, config.chunking)
        self.doc_of = [chunk.document_id for chunk in self.chunks]
        self.document_texts = {d.id: d.text for d in corpus.documents}
        titles = {d.id: str(d.metadata.get("title", "")) for d in corpus.documents}
        # the title in every chunk's text, not only the first's (for the lexical side)
        self.titled = [
            c.text
            if c.text.startswith(titles[c.document_id])
            else f"{titles[c.document_id]}\n\n{c.text}"
            for c in self.chunks
        ]
        self.embedder = cached_embedder(config, cache, threads)
        texts = [chunk.text for chunk in self.chunks]
        self.chunk_vectors = embed_in_slices(self.embedder, texts, 64, "chunks")
        groups = [split_sentences(text) for text in texts] if sentences else [[] for _ in texts]
        flat = [sentence for group in groups for sentence in group]
        self.sentence_vectors = embed_in_slices(self.embedder, flat, 64, "sentences")
        self.sentence_chunk = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
        self.starts = np.cumsum([0] + [len(g) for g in groups[:-1]])
        self.has_sentences = np.array([len(g) > 0 for g in groups])
        self._bm25: dict[tuple, object] = {}

    def dense(self, vectors: np.ndarray, fetch: int) -> list[Signal]:
        scores = vectors @ self.chunk_vectors.T
        return [top(row, fetch) for row in scores]

    def sentence(self, vectors: np.ndarray, fetch: int) -> list[Signal]:
        similarity = self.sentence_vectors @ vectors.T  # (sentences, queries)
        nonempty = np.flatnonzero(self.has_sentences)
        best = np.full((len(self.chunks), len(vectors)), -np.inf, dtype=np.float32)
        best[nonempty] = np.maximum.reduceat(similarity, self.starts[nonempty], axis=0)
        return [top(best[:, q], fetch) for q in range(len(vectors))]

    def windows(self, vectors: np.ndarray, fetch: int, width: int = 1) -> list[Signal]:
        """Like ``sentence``, over windows of summed sentence vectors (no new embedding).

        Each sentence's vector plus its ``width`` neighbours on each side (same chunk),
        renormalised.
        """
        if not hasattr(self, "_windows"):
            summed = self.sentence_vectors.copy()
            chunk = self.sentence_chunk
            for shift in range(1, width + 1):
                same = chunk[shift:] == chunk[:-shift]
                summed[shift:][same] += self.sentence_vectors[:-shift][same]
                summed[:-shift][same] += self.sentence_vectors[shift:][same]
            norms = np.linalg.norm(summed, axis=1, keepdims=True)
            self._windows = summed / np.maximum(norms, 1e-12)
        original, self.sentence_vectors = self.sentence_vectors, self._windows
        try:
            return self.sentence(vectors, fetch)
        finally:
            self.sentence_vectors = original

    def bm25(
        self, texts: Sequence[str], fetch: int, unit: str = "chunk", **params: object
    ) -> list[Signal]:
        """BM25 over chunks, title-prefixed chunks or whole documents (rows: that unit's)."""
        import bm25s

        key = (unit, *sorted(params.items()))
        units = {
            "chunk": [chunk.text for chunk in self.chunks],
            "titled": self.titled,
            "document": list(self.document_texts.values()),
        }[unit]
        if key not in self._bm25:
            retriever = bm25s.BM25(**params)
            tokens = bm25s.tokenize(
                units,
                stopwords="en",
                stemmer=_stemmer(),
                show_progress=False,
            )
            retriever.index(tokens, show_progress=False)
            self._bm25[key] = retriever
        retriever = self._bm25[key]
        found = []
        for text in texts:
            tokens = bm25s.tokenize([text], stopwords="en", stemmer=_stemmer(), show_progress=False)
            rows, scores = retriever.retrieve(tokens, k=fetch, show_progress=False)  # type: ignore[attr-defined]
            found.append(
                {int(r): float(s) for r, s in zip(rows[0], scores[0], strict=True) if s > 0}
            )
        return found

    def documents(self, fused: Signal, aggregate: str, depth: int = 200) -> dict[str, float]:
        """A document's score from its chunks' (the best ``depth`` chunks only)."""
        ranked = sorted(fused, key=lambda r: (-fused[r], r))[:depth]
        per_doc: dict[str, list[float]] = {}
        for row in ranked:
            per_doc.setdefault(self.doc_of[row], []).append(fused[row])
        if aggregate == "max":
            return {d: s[0] for d, s in per_doc.items()}
        if aggregate == "top2":  # best chunk plus half the second's
            return {d: s[0] + 0.5 * (s[1] if len(s) > 1 else 0.0) for d, s in per_doc.items()}
        return {d: sum(s) for d, s in per_doc.items()}


def score(  # noqa: D103 - one lever's nDCG@10
    corpus: Corpus,
    qrels: dict[str, dict[str, int]],
    query_ids: Sequence[str],
    fuse: Callable[[int], Signal],
    aggregate: str = "max",
) -> float:
    run = {q: corpus.documents(fuse(i), aggregate) for i, q in enumerate(query_ids)}
    return evaluate_run(qrels, run, ["ndcg@10", "recall@100"])["ndcg@10"]


@click.command()
@click.option("--data", help="SciFact folder [../shared/data/scifact]")
@click.option("--cache", default=".rag-model/bench-cache", show_default=True)
@click.option("--threads", default=2, show_default=True)
@click.option("--fetch", default=200, show_default=True, help="candidates per side")
@click.option("--no-sentences", is_flag=True, help="leave out the sentence signal (not embedded)")
@click.option(
    "--only",
    default="",
    help="comma-separated groups: base,weighted,rrf,agg,window,title,combined,docs,bm25",
)
def main(
    data: str | None, cache: str, threads: int, fetch: int, no_sentences: bool, only: str
) -> None:
    """Print the levers' nDCG@10 on train and test."""
    folder = Path(data) if data else shared_data("scifact")
    corpus = Corpus(folder, Path(cache), threads, sentences=not no_sentences)
    groups = (
        set(only.split(","))
        if only
        else {"base", "weighted", "rrf", "agg", "window", "title", "combined", "docs", "bm25"}
    )
    splits = {name: read_split(folder, name) for name in ("train", "test")}
    signals = {}
    for name, (queries, _) in splits.items():
        ids = list(queries)
        texts = [queries[q] for q in ids]
        vectors = embed_in_slices(corpus.embedder, texts, 64, f"{name} queries")
        signals[name] = {
            "ids": ids,
            "texts": texts,
            "dense": corpus.dense(vectors, fetch),
            "sentence": [{}] * len(ids) if no_sentences else corpus.sentence(vectors, fetch),
            "window": [{}] * len(ids) if no_sentences else corpus.windows(vectors, fetch),
            "bm25": corpus.bm25(texts, fetch),
        }
        print(f"{name}: {len(ids)} queries", file=sys.stderr, flush=True)

    rows: list[tuple[str, float, float]] = []

    def row(label: str, make: Callable[[dict], Callable[[int], Signal]], agg: str = "max") -> None:
        results = []
        for name in ("train", "test"):
            s = signals[name]
            results.append(score(corpus, splits[name][1], s["ids"], make(s), agg))
        rows.append((label, *results))
        print(f"| {label} | {results[0]:.4f} | {results[1]:.4f} |", flush=True)

    print("| lever | train nDCG@10 (809) | test nDCG@10 (300) |\n|---|---|---|")
    shares = (0.0,) if no_sentences else (0.0, 0.25, 0.5, 0.75, 1.0)
    if "base" in groups:
        row("dense", lambda s: lambda i: s["dense"][i])
        if not no_sentences:
            row("sentence (parent)", lambda s: lambda i: s["sentence"][i])
        row("bm25", lambda s: lambda i: s["bm25"][i])
    if "weighted" in groups:
        for wd, ws in itertools.product((0.3, 0.4, 0.5, 0.6, 0.7), shares):
            # dense share wd of the embedding side, split between chunk and sentence by ws
            weights = (wd * (1 - ws), wd * ws, 1 - wd)
            row(
                f"weighted dense {weights[0]:.2f} sentence {weights[1]:.2f} bm25 {weights[2]:.2f}",
                lambda s, w=weights: (
                    lambda i: weighted([s["dense"][i], s["sentence"][i], s["bm25"][i]], w)
                ),
            )
    if "rrf" in groups:
        for constant in (10, 30, 60):
            row(
                f"rrf k={constant} dense + bm25",
                lambda s, c=constant: lambda i: rrf([s["dense"][i], s["bm25"][i]], c),
            )
            if not no_sentences:
                row(
                    f"rrf k={constant} dense + sentence + bm25",
                    lambda s, c=constant: (
                        lambda i: rrf([s["dense"][i], s["sentence"][i], s["bm25"][i]], c)
                    ),
                )
    if "agg" in groups:
        for agg in ("top2", "sum"):
            row(
                f"weighted 0.5/0.5, document = {agg} of chunks",
                lambda s: lambda i: weighted([s["dense"][i], s["bm25"][i]], (0.5, 0.5)),
                agg,
            )
    if "window" in groups and not no_sentences:
        row("sentence windows (3, summed vectors)", lambda s: lambda i: s["window"][i])
        for w in ((0.25, 0.25, 0.5), (0.0, 0.5, 0.5), (0.2, 0.4, 0.4), (0.3, 0.3, 0.4)):
            row(
                f"weighted dense {w[0]} windows {w[1]} bm25 {w[2]}",
                lambda s, w=w: lambda i: weighted([s["dense"][i], s["window"][i], s["bm25"][i]], w),
            )
    if "title" in groups:
        for name in ("train", "test"):
            signals[name]["titled"] = corpus.bm25(signals[name]["texts"], fetch, "titled")
        row("bm25 over title + chunk", lambda s: lambda i: s["titled"][i])
        for wd in (0.4, 0.5, 0.6):
            row(
                f"weighted {wd} dense + bm25 over title + chunk",
                lambda s, w=wd: lambda i: weighted([s["dense"][i], s["titled"][i]], (w, 1 - w)),
            )
    if "combined" in groups and not no_sentences:
        # the train-best three-signal weights with the other levers that helped on train
        for name in ("train", "test"):
            signals[name]["titled"] = corpus.bm25(signals[name]["texts"], fetch, "titled")
        for w in ((0.25, 0.25, 0.5), (0.3, 0.3, 0.4)):
            row(
                f"weighted dense {w[0]} sentence {w[1]} bm25 over title + chunk {w[2]}",
                lambda s, w=w: (
                    lambda i: weighted([s["dense"][i], s["sentence"][i], s["titled"][i]], w)
                ),
            )
            row(
                f"weighted dense {w[0]} sentence {w[1]} bm25 {w[2]}, document = top2",
                lambda s, w=w: (
                    lambda i: weighted([s["dense"][i], s["sentence"][i], s["bm25"][i]], w)
                ),
                "top2",
            )
    if "docs" in groups:
        # document-level fusion: dense = best chunk cosine, BM25 over whole documents
        doc_ids = list(corpus.document_texts)
        for name in ("train", "test"):
            whole = corpus.bm25(signals[name]["texts"], fetch, "document")
            signals[name]["doc_fused"] = [
                (s_dense, {doc_ids[r]: v for r, v in w.items()})
                for s_dense, w in zip(signals[name]["dense"], whole, strict=True)
            ]
        for wd in (0.4, 0.5, 0.6):
            results = []
            for name in ("train", "test"):
                s = signals[name]
                run = {}
                for i, q in enumerate(s["ids"]):
                    dense_rows, bm25_docs = s["doc_fused"][i]
                    dense_docs = corpus.documents(dense_rows, "max")
                    run[q] = weighted([dense_docs, bm25_docs], (wd, 1 - wd))  # type: ignore[list-item]
                results.append(
                    evaluate_run(splits[name][1], run, ["ndcg@10", "recall@100"])["ndcg@10"]
                )
            label = f"document level: weighted {wd} dense(best chunk) + bm25(whole doc)"
            print(f"| {label} | {results[0]:.4f} | {results[1]:.4f} |", flush=True)
    if "bm25" in groups:
        variants = [
            {"method": m, "k1": k1, "b": b}
            for m in ("lucene", "bm25+", "bm25l")
            for k1, b in ((0.9, 0.4), (1.2, 0.75), (1.5, 0.75), (1.2, 0.9))
        ]
        for params in variants:
            for name in ("train", "test"):
                signals[name]["bm25x"] = corpus.bm25(signals[name]["texts"], fetch, **params)
            label = ", ".join(f"{k} {v}" for k, v in params.items())
            row(f"bm25 ({label})", lambda s: lambda i: s["bm25x"][i])
            row(
                f"weighted 0.5/0.5 with bm25 ({label})",
                lambda s: lambda i: weighted([s["dense"][i], s["bm25x"][i]], (0.5, 0.5)),
            )


if __name__ == "__main__":
    main()
