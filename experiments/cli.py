"""The ``rag-model`` command: main, promote, build, query, serve."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from experiments.history import history, rollback
from experiments.main import main
from experiments.promote import promote


@click.group()
@click.version_option(package_name="rag-model")
def cli() -> None:
    """Build, evaluate, register, promote and serve RAG pipelines as MLflow models."""


cli.add_command(main)
cli.add_command(promote)
cli.add_command(history)
cli.add_command(rollback)


@cli.command()
@click.option("--data-path", required=True, help="Folder of .txt/.md files or a .jsonl file.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="New snapshot folder.")
@click.option("--config", "config_path", default="", help="YAML file of config overrides.")
def build(data_path: str, out: str, config_path: str) -> None:
    """Build a Chroma snapshot locally (no MLflow), e.g. to inspect chunking."""
    from experiments.errors import friendly_errors
    from rag_model.build import build_snapshot
    from rag_model.config import RagConfig

    with friendly_errors():
        config = RagConfig.from_yaml(config_path) if config_path else RagConfig()
        result = build_snapshot(config, data_path, out, progress=True)
    click.echo(
        f"{result.document_count} documents, {result.chunk_count} chunks -> {out} "
        f"({result.seconds['build_seconds']:.1f} s)"
    )
    for path, reason in result.skipped:
        click.echo(f"  skipped {path}: {reason}")


@cli.command()
@click.argument("question")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, envvar="RAG_URL")
@click.option("--k", type=click.IntRange(min=1), default=None)
def query(question: str, url: str, k: int | None) -> None:
    """Ask a running server a QUESTION; print the answer, its sources and the served version."""
    import requests

    body: dict[str, object] = {"question": question}
    if k is not None:
        body["k"] = k
    try:
        response = requests.post(f"{url.rstrip('/')}/v1/query", json=body, timeout=60)
    except requests.RequestException as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from None
    data = response.json()
    if response.status_code != 200:
        raise click.ClickException(f"{response.status_code}: {json.dumps(data.get('error', data))}")
    model = data["model"]
    click.echo(f"Q: {question}\nA: {data['answer']}\n\nSources:")
    for number, source in enumerate(data.get("sources", []), start=1):
        click.echo(
            f"  [{number}] {source['document_id']} (score {source['score']:.3f}): "
            f"{source['text'][:100]}…"
        )
    click.echo(f"\nServed by {model['name']} version {model['version']} (run {model['run_id']})")


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("gunicorn_args", nargs=-1, type=click.UNPROCESSED)
def serve(gunicorn_args: tuple[str, ...]) -> None:
    """Run the REST server under gunicorn (extra arguments go to gunicorn)."""
    import serving

    conf = Path(serving.__file__).with_name("gunicorn.conf.py")
    argv = ["gunicorn", "-c", str(conf), *gunicorn_args, "serving:create_app()"]
    os.execvp(sys.executable, [sys.executable, "-m", *argv])


if __name__ == "__main__":
    cli()
