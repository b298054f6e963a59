"""Shared parts of the retrieval benchmarks: corpora, queries, judgements, cache, evaluation.

SciFact and SQuAD dev: their corpora, queries and judgements, a persistent embedding cache, and
the ranx evaluation of a run.

The corpora are read from ``../shared/data`` (their licences forbid copying them into the
project); SQuAD is written as a JSONL file into a temporary folder so that it goes through the
product's own ingestion (``load_documents``) like any user corpus.

Embedding is the slow part (minutes to an hour on 2 cores), so every vector (chunks, sentences,
questions) goes through one SQLite cache keyed by the embedder's identity and the text's
sha256 (``rag_model.embedding_cache``); ``python -m bench.retrieval_data warm`` fills it ahead
of the benchmarks, in slices, so an interrupted run keeps what it embedded.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from rag_model.chunking import chunk_documents
from rag_model.config import EMBEDDING_BACKENDS, RagConfig
from rag_model.documents import Chunk
from rag_model.embedders import Embedder, make_embedder
from rag_model.embedding_cache import PersistentEmbeddingCache, embedder_identity
from rag_model.generators import make_generator
from rag_model.ingestion import Corpus, load_documents
from rag_model.retrieval import Retriever
from rag_model.sentences import SentenceVectors, split_sentences

CACHE_FILE = "embeddings.sqlite"
WARM_SLICE = 1000  # texts embedded (and stored) per step of `warm`


@dataclass(frozen=True)
class Benchmark:
    """A corpus read through the product's ingestion, its queries and their judgements."""

    name: str
    corpus: Corpus
    queries: dict[str, str]  # query id -> text
    qrels: dict[str, dict[str, int]]  # query id -> {document id: relevance}


def read_split(folder: Path, split: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """A BEIR folder's queries that ``qrels/<split>.tsv`` judges, and those judgements."""
    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]:
        query, doc, score = line.split("\t")
        qrels.setdefault(query, {})[doc] = int(score)
    queries = {}
    for line in (folder / "queries.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["_id"] in qrels:
            queries[record["_id"]] = record["text"]
    return queries, qrels


def load_scifact(folder: Path) -> Benchmark:
    """SciFact (BEIR): the 5,183 abstracts and the 300 test queries that have judgements."""
    queries, qrels = read_split(folder, "test")
    return Benchmark("scifact", load_documents(folder / "corpus.jsonl"), queries, qrels)


def load_squad(source: Path, work: Path) -> Benchmark:
    """SQuAD v1.1 dev as paragraph retrieval: each question's own paragraph is relevant.

    Every paragraph is a document, every question a query (duplicates kept, by question id).
    """
    if not source.is_file():
        raise click.ClickException(f"no SQuAD file at {source}; pass --data PATH/dev-v1.1.json")
    squad = json.loads(source.read_text(encoding="utf-8"))
    work.mkdir(parents=True, exist_ok=True)
    corpus_file = work / "squad-dev.jsonl"
    queries, qrels = {}, {}
    with corpus_file.open("w", encoding="utf-8") as out:
        for article in squad["data"]:
            title = article["title"].replace("_", " ")
            for number, paragraph in enumerate(article["paragraphs"]):
                doc_id = f"{article['title']}-{number:03d}"
                record = {"id": doc_id, "text": paragraph["context"], "metadata": {"title": title}}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                for qa in paragraph["qas"]:
                    queries[qa["id"]] = qa["question"].strip()
                    qrels[qa["id"]] = {doc_id: 1}
    return Benchmark("squad-dev", load_documents(corpus_file), queries, qrels)


def shared_data(relative: str) -> Path:
    """``<shared>/data/<relative>`` for this checkout or a worktree of it (never copied)."""
    here = Path(__file__).resolve().parents[1]
    for root in (here.parent, Path("/work")):
        if (root / "shared" / "data" / relative).exists():
            return root / "shared" / "data" / relative
    return here.parent / "shared" / "data" / relative


def cached_embedder(config: RagConfig, cache: Path, threads: int) -> PersistentEmbeddingCache:
    """The config's embedder behind the persistent cache in ``cache``."""
    inner = make_embedder(config.embedding, threads=threads)
    return PersistentEmbeddingCache(inner, cache / CACHE_FILE, embedder_identity(config.embedding))


def embed_in_slices(
    embedder: Embedder, texts: Sequence[str], batch_size: int, label: str
) -> np.ndarray:
    """Embed ``texts`` a slice at a time (each slice stored in the cache before the next)."""
    unique = list(dict.fromkeys(texts))
    parts, started = [], time.perf_counter()
    for start in range(0, len(unique), WARM_SLICE):
        parts.append(embedder.embed(unique[start : start + WARM_SLICE], batch_size=batch_size))
        done = min(start + WARM_SLICE, len(unique))
        rate = done / max(time.perf_counter() - started, 1e-9)
        print(f"{label}: {done}/{len(unique)} ({rate:.1f}/s)", file=sys.stderr, flush=True)
    if not unique:
        return np.zeros((0, embedder.dimension), dtype=np.float32)
    by_text = dict(zip(unique, np.vstack(parts), strict=True))
    return np.vstack([by_text[text] for text in texts])


def chunk_sentences(chunks: Sequence[Chunk]) -> list[str]:
    """Every chunk's sentences in snapshot order (what the build embeds)."""
    return [sentence for chunk in chunks for sentence in split_sentences(chunk.text)]


def evaluate_run(
    qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]], metrics: Sequence[str]
) -> dict[str, float]:
    """The ranx scores of ``run`` (query id -> {document id: score}) against ``qrels``."""
    from ranx import Qrels, Run, evaluate

    # ranx refuses a run without the query: an empty result counts as zero for it
    complete = {query: run.get(query) or {"__none__": 0.0} for query in qrels}
    scores = evaluate(Qrels(qrels), Run(complete), list(metrics))
    return {name: float(scores[name]) for name in metrics}


def documents_of(hits: Sequence[tuple[str, float]]) -> dict[str, float]:
    """A document scores as its best chunk."""
    documents: dict[str, float] = {}
    for document_id, score in hits:
        documents[document_id] = max(documents.get(document_id, -1e9), score)
    return documents


class LazySentenceVectors(SentenceVectors):
    """Sentence vectors embedded on first use, through the cache, for the chunks that need them.

    SciFact's 60,593 sentences take about an hour to embed on 2 shared cores; re-scoring only
    reads the sentences of each query's top candidates, so a benchmark can embed just those
    (``prefetch`` before a mode runs). Sentence units (parent-document retrieval) need every
    sentence: they are not run with this store.
    """

    def __init__(self, texts: dict[str, str], embedder: Embedder) -> None:
        super().__init__(np.zeros((0, embedder.dimension), dtype=np.float32), {})
        self.texts = texts
        self.embedder = embedder
        self.found: dict[str, np.ndarray] = {}

    def prefetch(self, chunk_ids: Sequence[str]) -> None:
        """Embed (or read from the cache) the sentences of these chunks in one call."""
        missing = [c for c in dict.fromkeys(chunk_ids) if c not in self.found and c in self.texts]
        groups = [split_sentences(self.texts[c]) for c in missing]
        flat = [sentence for group in groups for sentence in group]
        vectors = embed_in_slices(self.embedder, flat, 32, "candidate sentences") if flat else None
        start = 0
        for chunk_id, group in zip(missing, groups, strict=True):
            assert vectors is not None or not group
            self.found[chunk_id] = (
                vectors[start : start + len(group)]
                if vectors is not None
                else np.zeros((0, self.embedder.dimension), dtype=np.float32)
            )
            start += len(group)

    def for_chunk(self, chunk_id: str, expected: int | None = None) -> np.ndarray | None:
        if chunk_id not in self.found:
            self.prefetch([chunk_id])
        vectors = self.found.get(chunk_id)
        if vectors is None or (expected is not None and len(vectors) != expected):
            return None
        return vectors


@dataclass(frozen=True)
class ModeRow:
    """One retrieval configuration's quality and cost on a benchmark."""

    label: str
    scores: dict[str, float]
    answer_ms: float  # median latency of pipeline.answer at one thread (serving k)


def rescoring_modes(weights: Sequence[float], depth: int) -> dict[str, dict[str, object]]:
    """Every mode, without and with sentence re-scoring, and the parent-document variants."""
    base: dict[str, dict[str, object]] = {
        "dense": {"mode": "dense"},
        "bm25": {"mode": "bm25"},
        "hybrid rrf (k=60)": {"mode": "hybrid", "fusion": "rrf"},
        "hybrid weighted (0.5)": {"mode": "hybrid", "fusion": "weighted"},
        "parent: dense over sentences": {"mode": "dense", "search_unit": "sentence"},
        "parent: hybrid weighted over sentences": {
            "mode": "hybrid",
            "fusion": "weighted",
            "search_unit": "sentence",
        },
        "chunk + sentence signals: hybrid weighted (0.5)": {
            "mode": "hybrid",
            "fusion": "weighted",
            "search_unit": "both",
        },
        "chunk + sentence signals: hybrid weighted (0.6)": {
            "mode": "hybrid",
            "fusion": "weighted",
            "search_unit": "both",
            "dense_weight": 0.6,
        },
        "chunk + sentence signals: hybrid rrf (k=60)": {
            "mode": "hybrid",
            "fusion": "rrf",
            "search_unit": "both",
        },
    }
    modes = dict(base)
    for label, retrieval in base.items():
        for weight in weights:
            modes[f"{label} + sentence {weight:g} (depth {depth})"] = {
                **retrieval,
                "sentence_weight": weight,
                "sentence_depth": depth,
            }
    return modes


def select_modes(modes: dict[str, dict[str, object]], only: str) -> dict[str, dict[str, object]]:
    """The modes named by ``only``: comma-separated label substrings, or ``=LABEL`` (exact)."""
    if not only:
        return modes
    wanted = [part.strip() for part in only.split(",") if part.strip()]
    return {
        label: mode
        for label, mode in modes.items()
        if any(label == w[1:] if w.startswith("=") else w in label for w in wanted)
    }


def evaluate_modes(
    bench: Benchmark,
    config: RagConfig,
    snapshot: Path,
    embedder: Embedder,
    modes: dict[str, dict[str, object]],
    depth: int,
    metrics: Sequence[str],
    latency_questions: int,
    lazy: LazySentenceVectors | None = None,
) -> list[ModeRow]:
    """Score each mode on the benchmark (documents ranked by their first chunk) and time it.

    Quality: every query, ``depth`` chunks each, query vectors from ``embedder`` (cached).
    Cost: the median ``pipeline.answer`` latency (the serving k, extractive answer) over
    ``latency_questions`` questions, one onnxruntime and one BLAS thread, no query cache.
    ``lazy``: the snapshot has no sentence vectors; re-scoring modes embed their candidates'
    sentences first, sentence-unit modes are left out.
    """
    from threadpoolctl import threadpool_limits

    from rag_model.pipeline import RagPipeline

    def open_pipeline(mode_config: RagConfig, **options: object) -> RagPipeline:
        if lazy is None:
            return RagPipeline.from_snapshot(mode_config, snapshot, **options)  # type: ignore[arg-type]
        plain = mode_config.with_overrides({"retrieval.sentence_weight": 0.0})
        pipeline = RagPipeline.from_snapshot(plain, snapshot, **options)  # type: ignore[arg-type]
        lexical = pipeline.retriever.lexical
        pipeline.retriever = Retriever(mode_config.retrieval, pipeline.index, lexical, lazy)
        pipeline.generator = make_generator(mode_config.generation, pipeline.embedder, lazy)
        return pipeline

    query_ids = list(bench.queries)
    texts = [bench.queries[q] for q in query_ids]
    vectors = embed_in_slices(embedder, texts, 64, f"{bench.name} queries")
    timed = texts[:latency_questions]
    rows = []
    for label, retrieval in modes.items():
        flat = {f"retrieval.{name}": value for name, value in retrieval.items()}
        mode_config = config.with_overrides(flat)
        if lazy is not None and mode_config.retrieval.search_unit != "chunk":
            print(f"{label}: left out (needs every sentence vector)", file=sys.stderr)
            continue
        # quality at depth: the refining stages see the same candidates as at serving depth
        fetch = max(depth, mode_config.retrieval.fetch_k)
        deep = mode_config.with_overrides({"retrieval.k": depth, "retrieval.fetch_k": fetch})
        if lazy is not None and mode_config.retrieval.sentence_weight > 0:
            _prefetch(lazy, open_pipeline(deep), texts, vectors, deep.retrieval.sentence_depth)
        pipeline = open_pipeline(deep)
        run: dict[str, dict[str, float]] = {}
        step = 256
        for start in range(0, len(query_ids), step):
            part = slice(start, start + step)
            found = pipeline.retriever.retrieve_many(texts[part], vectors[part], depth)
            for query_id, hits in zip(query_ids[part], found, strict=True):
                ranked = [(hit.document_id, -float(rank)) for rank, hit in enumerate(hits)]
                run[query_id] = documents_of(ranked)
        scores = evaluate_run(bench.qrels, run, metrics)
        serving = open_pipeline(
            mode_config.with_overrides({"embedding.query_cache_size": 0}), threads=1
        )
        with threadpool_limits(limits=1):
            serving.warm_up()
            serving.answer(timed[0])
            times = []
            for question in timed:
                started = time.perf_counter()
                serving.answer(question)
                times.append((time.perf_counter() - started) * 1000)
        rows.append(ModeRow(label, scores, float(np.median(times))))
        print(f"{label}: {scores} {rows[-1].answer_ms:.1f} ms", file=sys.stderr, flush=True)
    return rows


def _prefetch(
    lazy: LazySentenceVectors, pipeline: object, texts: list[str], vectors: np.ndarray, top: int
) -> None:
    """Embed the sentences of every query's first-stage top candidates (before re-scoring)."""
    retriever = pipeline.retriever  # type: ignore[attr-defined]
    plain = Retriever(
        retriever.config.model_copy(update={"sentence_weight": 0.0}),
        retriever.index,
        retriever.lexical,
    )
    wanted: list[str] = []
    for start in range(0, len(texts), 256):
        part = slice(start, start + 256)
        for hits in plain.retrieve_many(texts[part], vectors[part], top):
            wanted.extend(hit.id for hit in hits)
    lazy.prefetch(wanted)


def print_table(rows: Sequence[ModeRow], metrics: Sequence[str], baseline: str) -> None:
    """A Markdown table; latency also as a ratio to the ``baseline`` row's."""
    base = next((row.answer_ms for row in rows if row.label == baseline), float("nan"))
    print("| mode | " + " | ".join(metrics) + " | answer ms (1 thread, p50) | x default |")
    print("|---|" + "---|" * (len(metrics) + 2))
    for row in rows:
        values = " | ".join(f"{row.scores[name]:.4f}" for name in metrics)
        print(f"| {row.label} | {values} | {row.answer_ms:.1f} | {row.answer_ms / base:.2f} |")


@click.group()
def cli() -> None:
    """Fill the benchmarks' embedding cache ahead of time."""


@cli.command()
@click.option("--dataset", type=click.Choice(["scifact", "squad"]), required=True)
@click.option("--data", help="corpus folder (SciFact) or dev-v1.1.json (SQuAD); default ../shared")
@click.option("--cache", default=".rag-model/bench-cache", show_default=True)
@click.option("--backend", type=click.Choice(EMBEDDING_BACKENDS), default="onnx", show_default=True)
@click.option("--threads", default=2, show_default=True)
@click.option("--what", default="queries,chunks,sentences", show_default=True)
def warm(dataset: str, data: str | None, cache: str, backend: str, threads: int, what: str) -> None:
    """Embed the dataset's queries, chunks and chunk sentences (default config) into the cache."""
    import tempfile

    config = RagConfig.from_dict({"embedding": {"backend": backend}})
    with tempfile.TemporaryDirectory() as tmp:
        if dataset == "scifact":
            bench = load_scifact(Path(data) if data else shared_data("scifact"))
        else:
            source = Path(data) if data else shared_data("squad_v1.1/dev-v1.1.json")
            bench = load_squad(source, Path(tmp))
    chunks = chunk_documents(bench.corpus.documents, config.chunking)
    embedder = cached_embedder(config, Path(cache), threads)
    batch = config.embedding.batch_size
    texts = {
        "queries": list(bench.queries.values()),
        "chunks": [chunk.text for chunk in chunks],
        "sentences": chunk_sentences(chunks),
    }
    for part in what.split(","):
        embed_in_slices(embedder, texts[part], batch, f"{dataset} {part}")


if __name__ == "__main__":
    cli()
