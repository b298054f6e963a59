"""Entry point ``build_index``: build the snapshot, log the model, register it unevaluated."""

from __future__ import annotations

import click

from experiments.options import (
    DEFAULT_DATA,
    config_options,
    embedding_cache_option,
    engine_option,
    load_config,
    quiet_option,
)
from experiments.params import model_name_option, option
from experiments.runs import build_and_log, failures_logged


@click.command("build_index")
# a plain option: an empty data path is refused, not defaulted
@click.option("--data-path", default=DEFAULT_DATA, show_default=True, help="Documents to index.")
@config_options
@engine_option
@embedding_cache_option
@quiet_option
@model_name_option
@option(
    "--register/--no-register",
    default=True,
    show_default=True,
    help="Register the logged model as a new version (evaluate it next with `evaluate`).",
)
def build_index(
    data_path: str,
    config_path: str,
    chunk_size: int | None,
    chunk_overlap: int | None,
    k: int | None,
    fake: bool,
    engine: str,
    embedding_cache: str,
    quiet: bool,
    model_name: str,
    register: bool,
) -> None:
    """Build the index, log the model with its snapshot, and register it (no alias moves)."""
    import mlflow

    from experiments.errors import friendly_errors
    from rag_model.packaging.registry import register_version

    with friendly_errors():
        config = load_config(config_path, fake, chunk_size, chunk_overlap, k)
        with mlflow.start_run() as run, failures_logged():
            info = build_and_log(
                config,
                data_path,
                progress=not quiet,
                engine=engine,
                embedding_cache=embedding_cache,
            )
            version = register_version(info.model_uri, model_name).version if register else None
    where = f"registered as {model_name} version {version}" if version else info.model_uri
    click.echo(f"built and logged in run {run.info.run_id}: {where}")
