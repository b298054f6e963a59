"""Entry point ``sweep``: a grid of configurations as child runs of one parent run.

The grid is chunk strategy x size x overlap x k x retrieval mode. Each chunking is built once
(k and mode only change how the index is queried), and chunk texts are embedded through a
persistent cache keyed by the embedder's identity and the text's sha256, so configurations that
share chunks, and a second run of the same sweep, never embed them again. The parent run logs a
summary table and the best configuration per metric.
"""

from __future__ import annotations

import itertools
import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from evaluation.dataset import EvalSet
from evaluation.runner import Judge
from experiments.options import DEFAULT_DATA, eval_options, load_config, load_eval, make_judge
from experiments.params import option
from experiments.runs import failures_logged
from rag_model.config import RagConfig
from rag_model.embedding_cache import DEFAULT_CACHE_PATH
from rag_model.errors import ConfigError
from rag_model.ingestion import Corpus

DEFAULT_CACHE = DEFAULT_CACHE_PATH  # one default for every build
# the metrics "best" is reported for; latency is lower-is-better
BEST_HIGHER = (
    "hit_rate",
    "recall",
    "mrr",
    "ndcg_at_10",
    "map_at_10",
    "contains_reference",
    "rouge_l",
    "semantic_similarity",
    "context_recall",
    "context_precision",
)
BEST_LOWER = ("latency_p95_ms",)


@dataclass(frozen=True)
class Grid:
    """The values swept; every combination is one child run."""

    strategies: list[str]
    chunk_sizes: list[int]
    chunk_overlaps: list[int]
    ks: list[int]
    modes: list[str]

    def chunkings(self) -> Iterator[tuple[str, int, int]]:
        """Each distinct chunking (one index build each)."""
        return itertools.product(self.strategies, self.chunk_sizes, self.chunk_overlaps)

    def queries(self) -> Iterator[tuple[int, str]]:
        """Each way of querying one index."""
        return itertools.product(self.ks, self.modes)

    def configs(self, base: RagConfig) -> list[RagConfig]:
        """Every configuration, validated before anything is built.

        Raises:
            ConfigError: a combination is invalid (named, e.g. overlap >= size).
        """
        return [
            variant(base, chunking, query)
            for chunking in self.chunkings()
            for query in self.queries()
        ]


def variant(base: RagConfig, chunking: tuple[str, int, int], query: tuple[int, str]) -> RagConfig:
    """``base`` with one grid point applied."""
    (strategy, size, overlap), (k, mode) = chunking, query
    overrides = {
        "chunking.strategy": strategy,
        "chunking.chunk_size": size,
        "chunking.chunk_overlap": overlap,
        "retrieval.k": k,
        "retrieval.mode": mode,
    }
    try:
        return base.with_overrides(overrides)
    except ConfigError as exc:
        raise ConfigError(f"sweep point {json.dumps(overrides)} is invalid: {exc}") from None


def parse_list(text: str, name: str, cast: type = str, minimum: int | None = None) -> list[Any]:
    """``"400, 800"`` -> ``[400, 800]``, with a message naming the parameter on bad values."""
    values = [part.strip() for part in text.split(",") if part.strip()]
    if not values:
        raise click.BadParameter(f"give at least one value, e.g. {name}=800", param_hint=name)
    try:
        parsed = [cast(v) for v in values]
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a comma-separated list of {cast.__name__}s", param_hint=name
        ) from None
    if minimum is not None and any(v < minimum for v in parsed):
        raise click.BadParameter(f"values must be >= {minimum}, got {text!r}", param_hint=name)
    return list(dict.fromkeys(parsed))


@dataclass(frozen=True)
class SweepResult:
    """The parent run, one summary row per child, and the best child per metric."""

    parent_run_id: str
    rows: list[dict[str, Any]]
    best: dict[str, dict[str, Any]]
    seconds: float
    cache_hits: int
    cache_misses: int


def run_sweep(
    base: RagConfig,
    grid: Grid,
    data_path: str | Path,
    eval_set: EvalSet,
    cache_path: str | Path | None = DEFAULT_CACHE,
    judge: Judge | None = None,
    progress: bool = True,
) -> SweepResult:
    """Run every grid point as a child run of a new (or the active) parent run."""
    import mlflow

    from evaluation.dataset import check_overlap
    from experiments.evaluation_run import log_dataset
    from rag_model.ingestion import load_documents

    configs = grid.configs(base)  # all invalid points are refused before any work
    started = time.perf_counter()
    embedder = _embedder(base, cache_path)
    rows: list[dict[str, Any]] = []
    with mlflow.start_run() as parent, failures_logged():
        mlflow.log_params({f"sweep.{k}": json.dumps(v) for k, v in grid.__dict__.items()})
        # the resolved paths are tags: under `mlflow run` the params data_path and eval_path
        # are MLflow's, logged as given, and may not be logged again with another value
        mlflow.set_tags(
            {"rag_model.data_path": str(data_path), "rag_model.eval_path": eval_set.source}
        )
        corpus = load_documents(data_path)  # read once, checked before any embedding
        check_overlap(eval_set, {document.id for document in corpus.documents}, str(data_path))
        log_dataset(eval_set)
        points = iter(configs)
        with _progress(len(configs), progress) as bar:
            for chunking in grid.chunkings():
                group = [next(points) for _ in grid.queries()]
                rows += _run_group(
                    group, chunking, corpus, data_path, eval_set, embedder, judge, bar
                )
        seconds = time.perf_counter() - started
        best = best_per_metric(rows)
        _log_summary(rows, best, seconds, embedder)
    return SweepResult(
        parent.info.run_id,
        rows,
        best,
        seconds,
        getattr(embedder, "hits", 0),
        getattr(embedder, "misses", 0),
    )


def _embedder(base: RagConfig, cache_path: str | Path | None) -> Any:
    from rag_model.embedders import make_embedder
    from rag_model.embedding_cache import cache_path_option, cached_embedder

    return cached_embedder(
        make_embedder(base.embedding), base.embedding, cache_path_option(cache_path)
    )


def _progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="sweep", unit="config", disable=not enabled)


def _run_group(
    configs: list[RagConfig],
    chunking: tuple[str, int, int],
    corpus: Corpus,
    data_path: str | Path,
    eval_set: EvalSet,
    embedder: Any,
    judge: Judge | None,
    bar: Any,
) -> list[dict[str, Any]]:
    """Build one chunking's index, then evaluate each k x mode on it as a child run."""
    import mlflow

    from experiments.evaluation_run import publish_evaluation, run_evaluation
    from rag_model.build import build_snapshot
    from rag_model.embedders import CachingEmbedder
    from rag_model.generators import make_generator
    from rag_model.index import ChromaIndex
    from rag_model.pipeline import RagPipeline

    rows = []
    with tempfile.TemporaryDirectory(prefix="rag-model-sweep-") as tmp:
        built = build_snapshot(
            configs[0], data_path, Path(tmp) / "index", embedder=embedder, corpus=corpus
        )
        build_metrics = {
            **built.seconds,
            "chunk_count": built.chunk_count,
            "index_bytes": built.index_bytes,
            **built.counts,
        }
        index = ChromaIndex.open(built.snapshot_dir)
        sentence_vectors = index.sentence_vectors()  # built once per chunking, shared
        try:
            for config in configs:
                with mlflow.start_run(nested=True) as child, failures_logged():
                    mlflow.log_params(config.flatten())
                    mlflow.log_metrics(build_metrics)
                    query_embedder = CachingEmbedder(embedder)
                    generator = make_generator(config.generation, query_embedder, sentence_vectors)
                    pipeline = RagPipeline(config, index, query_embedder, generator)
                    evaluated = run_evaluation(pipeline, eval_set, judge, progress=False)
                    publish_evaluation(
                        evaluated, eval_set, config.to_dict(), "", None, child.info.run_id
                    )
                rows.append(
                    _summary_row(child.info.run_id, config, evaluated.result.metrics, build_metrics)
                )
                bar.set_postfix_str(f"chunks {chunking[1]}/{chunking[2]} k={config.retrieval.k}")
                bar.update(1)
        finally:
            index.close()
    return rows


def _summary_row(
    run_id: str, config: RagConfig, metrics: dict[str, float], build: dict[str, float]
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "chunking.strategy": config.chunking.strategy,
        "chunking.chunk_size": config.chunking.chunk_size,
        "chunking.chunk_overlap": config.chunking.chunk_overlap,
        "retrieval.k": config.retrieval.k,
        "retrieval.mode": config.retrieval.mode,
        **{name: round(value, 6) for name, value in {**build, **metrics}.items()},
    }


def best_per_metric(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For each comparable metric, the child run with the best value and its configuration.

    Metrics carrying k in their name (``hit_rate_at_4``) are compared through their k-free
    prefix so configurations with different k compete on what each one serves.
    """
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        for name, value in row.items():
            metric = _comparable(name, row["retrieval.k"])
            if metric is None or not isinstance(value, float | int) or value != value:
                continue
            lower = metric in BEST_LOWER
            current = best.get(metric)
            if current is None or (value < current["value"] if lower else value > current["value"]):
                config = {k: v for k, v in row.items() if k.startswith(("chunking.", "retrieval."))}
                best[metric] = {"value": value, "run_id": row["run_id"], "config": config}
    return best


def _comparable(name: str, k: int) -> str | None:
    stripped = name.removesuffix(f"_at_{k}")
    if stripped in BEST_HIGHER or stripped in BEST_LOWER:
        return stripped
    return None


def _log_summary(
    rows: list[dict[str, Any]], best: dict[str, dict[str, Any]], seconds: float, embedder: Any
) -> None:
    import mlflow
    import pandas as pd

    table = pd.DataFrame(rows)
    mlflow.log_table(table, "sweep/summary.json")
    mlflow.log_text(table.to_csv(index=False), "sweep/summary.csv")
    mlflow.log_text(table.to_markdown(index=False), "sweep/summary.md")
    mlflow.log_dict(best, "sweep/best.json")
    mlflow.set_tags({f"best.{metric}": info["run_id"] for metric, info in best.items()})
    mlflow.log_metrics({f"best_{metric}": float(info["value"]) for metric, info in best.items()})
    mlflow.log_metrics(
        {
            "sweep_seconds": seconds,
            "configurations": float(len(rows)),
            "embedding_cache_hits": float(getattr(embedder, "hits", 0)),
            "embedding_cache_misses": float(getattr(embedder, "misses", 0)),
        }
    )


# each grid axis: its option, the config field it sets, how a value is read, and its minimum
AXES = (
    ("--chunk-strategies", "chunking.strategy", str, None),
    ("--chunk-sizes", "chunking.chunk_size", int, 1),
    ("--chunk-overlaps", "chunking.chunk_overlap", int, 0),
    ("--ks", "retrieval.k", int, 1),
    ("--retrieval-modes", "retrieval.mode", str, None),
)


def grid_from_options(base: RagConfig, *texts: str) -> Grid:
    """The grid the five axis options ask for; an empty axis keeps ``base``'s value.

    So ``--config my.yaml`` alone evaluates exactly my.yaml, and ``--ks 2,4`` sweeps k over
    my.yaml's chunking and mode: only the axes given are swept.

    Raises:
        click.BadParameter: a value is not a list of the axis' type, or below its minimum.
    """
    flat = base.flatten()
    axes = [
        parse_list(text, name, cast, minimum) if text.strip() else [flat[field]]
        for text, (name, field, cast, minimum) in zip(texts, AXES, strict=True)
    ]
    return Grid(*axes)


@click.command("sweep")
# a plain option: an empty data path is refused, not defaulted
@click.option("--data-path", default=DEFAULT_DATA, show_default=True, help="Documents to index.")
@eval_options
@option("--config", "config_path", default="", help="YAML file: the base configuration.")
@option("--fake", is_flag=True, help="Hash embedder + echo generator: a fast smoke run.")
@option(
    "--chunk-strategies",
    default="",
    help="Comma-separated: recursive,token,sentence [the base config's].",
)
@option("--chunk-sizes", default="", help="Comma-separated sizes [the base config's].")
@option("--chunk-overlaps", default="", help="Comma-separated overlaps [the base config's].")
@option("--ks", default="", help="Comma-separated retriever k values [the base config's].")
@option(
    "--retrieval-modes",
    default="",
    help="Comma-separated: dense,bm25,hybrid [the base config's].",
)
@option(
    "--embedding-cache",
    "--cache",
    "cache_path",
    default=DEFAULT_CACHE,
    show_default=True,
    envvar="RAG_EMBEDDING_CACHE",
    help="Embedding cache file (SQLite) shared by every build; 'none' embeds everything.",
)
@option("--no-cache", is_flag=True, help="Embed every chunk again; keep no cache file.")
def sweep(
    data_path: str,
    eval_path: str,
    split: str,
    max_questions: int | None,
    judge_base_url: str,
    judge_model: str,
    judge_api_key_env: str,
    config_path: str,
    fake: bool,
    chunk_strategies: str,
    chunk_sizes: str,
    chunk_overlaps: str,
    ks: str,
    retrieval_modes: str,
    cache_path: str,
    no_cache: bool,
) -> None:
    """Evaluate a grid of configurations as child runs of one parent run.

    Each axis left out keeps the base configuration's value (--config, else the defaults).
    """
    from experiments.errors import friendly_errors

    with friendly_errors():
        base = load_config(config_path, fake)
        grid = grid_from_options(
            base, chunk_strategies, chunk_sizes, chunk_overlaps, ks, retrieval_modes
        )
        eval_set = load_eval(eval_path, split, max_questions)
        judge = make_judge(judge_base_url, judge_model, judge_api_key_env)
        result = run_sweep(base, grid, data_path, eval_set, None if no_cache else cache_path, judge)
    click.echo(
        f"sweep of {len(result.rows)} configurations in {result.seconds:.1f} s "
        f"(parent run {result.parent_run_id}; embedding cache {result.cache_hits} hits, "
        f"{result.cache_misses} misses)"
    )
    for metric, info in sorted(result.best.items()):
        click.echo(f"  best {metric:22s} {info['value']:.4f}  {json.dumps(info['config'])}")
