"""The ``rag-model`` command: every MLproject entry point, plus build, query and serve."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from experiments.build_index import build_index
from experiments.client import query
from experiments.diff import diff
from experiments.evaluate_version import evaluate
from experiments.history import history, rollback
from experiments.main import main
from experiments.options import embedding_cache_option, engine_option, quiet_option
from experiments.promote import promote
from experiments.report import report
from experiments.shadow_report import shadow_report
from experiments.sweep import sweep


@click.group()
@click.version_option(package_name="rag-model")
def cli() -> None:
    """Build, evaluate, register, promote and serve RAG pipelines as MLflow models."""


for command in (
    main,
    build_index,
    evaluate,
    sweep,
    promote,
    report,
    history,
    rollback,
    query,
    shadow_report,
    diff,
):
    cli.add_command(command)


@cli.command()
@click.option("--data-path", required=True, help="Folder of .txt/.md files or a .jsonl file.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="New snapshot folder.")
@click.option("--config", "config_path", default="", help="YAML file of config overrides.")
@engine_option
@embedding_cache_option
@quiet_option
def build(
    data_path: str, out: str, config_path: str, engine: str, embedding_cache: str, quiet: bool
) -> None:
    """Build a Chroma snapshot (no MLflow), e.g. to inspect chunking."""
    from experiments.errors import friendly_errors
    from experiments.runs import build_with
    from rag_model.config import RagConfig

    with friendly_errors():
        config = RagConfig.from_yaml(config_path) if config_path else RagConfig()
        result = build_with(
            engine, config, data_path, out, not quiet, embedding_cache=embedding_cache
        )
    click.echo(
        f"{result.document_count} documents, {result.chunk_count} chunks -> {out} "
        f"({result.seconds['build_seconds']:.1f} s; chunks embedded "
        f"{result.counts.get('build_chunks_embedded', 0)}, reused "
        f"{result.counts.get('build_chunks_reused', 0)})"
    )
    for path, reason in result.skipped:
        click.echo(f"  skipped {path}: {reason}")


@cli.command()
@click.option(
    "--snapshot",
    "snapshot_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="A snapshot built by 'rag-model build'.",
)
@click.option(
    "--config",
    "config_path",
    required=True,
    help="YAML with index.location: server, index.server_url and index.collection.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--replace", is_flag=True, help="Replace a collection of that name that differs.")
def publish(snapshot_dir: str, config_path: str, batch_size: int, replace: bool) -> None:
    """Upload a snapshot's collection to a Chroma server, for server-mode model versions."""
    from experiments.errors import friendly_errors
    from rag_model.config import RagConfig
    from rag_model.publish import publish_snapshot

    with friendly_errors():
        config = RagConfig.from_yaml(config_path)
        result = publish_snapshot(
            snapshot_dir, config.index, batch_size=batch_size, replace=replace
        )
    what = "already held" if result.reused else "published"
    click.echo(
        f"{what} {result.chunk_count} chunks of {snapshot_dir} in collection "
        f"{result.collection!r} on {result.server_url} ({result.seconds:.1f} s, content digest "
        f"{result.content_digest[:12]}…)"
    )


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("gunicorn_args", nargs=-1, type=click.UNPROCESSED)
def serve(gunicorn_args: tuple[str, ...]) -> None:
    """Run the REST server under gunicorn (extra arguments go to gunicorn)."""
    import serving

    conf = Path(serving.__file__).with_name("gunicorn.conf.py")
    argv = ["gunicorn", "-c", str(conf), *gunicorn_args, "serving:create_app()"]
    os.execvp(sys.executable, [sys.executable, "-m", *argv])


def run_cli(args: list[str] | None = None) -> None:
    """Run ``cli``; every refusal is one ``Error: ...`` line on stderr and a non-zero exit.

    Usage errors get one line too (with where to find help) instead of click's usage block,
    so a log or an ``mlflow run`` tag shows the reason alone. Under ``mlflow run``, a refused
    parameter also fails the run, with why: MLflow starts the run before the script parses its
    parameters, so a parse error would end FAILED with no message in the tracking store unless
    it is tagged here.
    """
    try:
        cli.main(args=args, prog_name="rag-model", standalone_mode=False)
    except click.UsageError as exc:
        message = exc.format_message()
        _tag_mlflow_run_error(message)
        command = exc.ctx.command_path if exc.ctx else "rag-model"
        click.echo(f"Error: {message} (see '{command} --help')", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        _tag_mlflow_run_error(exc.format_message())
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)


def _tag_mlflow_run_error(message: str) -> None:
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        return
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    if "error" not in client.get_run(run_id).data.tags:  # the run's own error came first
        client.set_tag(run_id, "error", message[:5000])


if __name__ == "__main__":
    run_cli()
