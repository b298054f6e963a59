"""What the entry points share: build and log a model into the active run, tag a failed run.

``build_with`` builds a snapshot on either engine; ``build_and_log`` also logs it as a model
with its params and build metrics; ``failures_logged`` records an error on the run it ends;
``print_metrics`` prints a run's metrics the same way for every command.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from evaluation.dataset import EvalSet
from rag_model.config import RagConfig
from rag_model.ingestion import Corpus


def build_and_log(
    config: RagConfig,
    data_path: str | Path,
    progress: bool = True,
    engine: str = "local",
    eval_set: EvalSet | None = None,
    embedding_cache: str | Path | None = None,
) -> Any:
    """Build the snapshot and log the model into the active run (params, build metrics too).

    With ``eval_set``, the documents are first checked to be the ones it was made for.
    ``embedding_cache``: the ``--embedding-cache`` value (a file, or ``none``).
    """
    import mlflow

    from rag_model.packaging.log import log_rag_model

    mlflow.log_params(config.flatten())
    mlflow.set_tags({"rag_model.data_path": str(data_path), "rag_model.build_engine": engine})
    corpus = None
    if eval_set is not None:  # before minutes of embedding, not after
        from evaluation.dataset import check_overlap
        from rag_model.ingestion import load_documents

        corpus = load_documents(data_path)
        check_overlap(eval_set, {document.id for document in corpus.documents}, str(data_path))
    with tempfile.TemporaryDirectory(prefix="rag-model-build-") as tmp:
        built = build_with(
            engine, config, data_path, Path(tmp) / "index", progress, corpus, embedding_cache
        )
        mlflow.log_metrics(
            {
                **built.seconds,
                **built.counts,
                "chunk_count": built.chunk_count,
                "document_count": built.document_count,
                "index_bytes": built.index_bytes,
            }
        )
        mlflow.log_dict(built.ingestion_report, "ingestion/report.json")
        if config.index.location == "server":  # the model will ship no Chroma files
            from rag_model.publish import publish_snapshot

            published = publish_snapshot(built.snapshot_dir, config.index)
            mlflow.log_metric("publish_seconds", published.seconds)
        return log_rag_model(config, built.snapshot_dir)


def build_with(
    engine: str,
    config: RagConfig,
    data_path: str | Path,
    snapshot_dir: str | Path,
    progress: bool = True,
    corpus: Corpus | None = None,
    embedding_cache: str | Path | None = None,
) -> Any:
    """Build a snapshot in this process (``local``) or on Spark (``spark``): the same files.

    ``corpus``: the documents of ``data_path`` when already read (a local build reuses them).
    ``embedding_cache``: the cache file (``none`` or None: no cache).
    """
    from rag_model.embedding_cache import cache_path_option

    cache = cache_path_option(embedding_cache)
    if engine == "spark":
        from rag_model.index import check_snapshot_target
        from rag_spark.indexing import build_snapshot_on_spark
        from rag_spark.session import spark_session

        check_snapshot_target(Path(snapshot_dir))  # in a second, before Spark starts
        return build_snapshot_on_spark(
            spark_session(),
            config,
            data_path,
            snapshot_dir,
            embedding_cache=cache,
            progress=progress,
        )
    from rag_model.build import build_snapshot

    return build_snapshot(
        config, data_path, snapshot_dir, progress=progress, corpus=corpus, embedding_cache=cache
    )


@contextmanager
def failures_logged() -> Iterator[None]:
    """On an error, tag the active run with it (the run then ends FAILED) and re-raise."""
    try:
        yield
    except BaseException as exc:
        import mlflow

        mlflow.set_tag("error", f"{type(exc).__name__}: {exc}"[:5000])
        raise


def print_metrics(metrics: dict[str, float]) -> None:
    """One aligned line per metric."""
    for name, value in sorted(metrics.items()):
        click.echo(f"  {name:28s} {value:.4f}")
