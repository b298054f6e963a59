"""Entry point ``promote``: point an alias (default ``production``) at a version or alias."""

from __future__ import annotations

import click

from experiments.main import DEFAULT_MODEL_NAME


def run_promote(model_name: str, version: str, alias: str) -> tuple[str, str | None]:
    """Point ``alias`` at ``version`` (a number or another alias).

    Returns:
        (the version now under ``alias``, the version it pointed at before or None).
    """
    from rag_model.packaging.registry import current_alias_version, resolve_version, set_alias

    target = resolve_version(model_name, version)
    previous = current_alias_version(model_name, alias)
    reason = f"promoted from {version!r}" + (f", replacing v{previous}" if previous else "")
    set_alias(model_name, alias, target.version, reason=reason)
    return target.version, previous


@click.command("promote")
@click.option(
    "--model-name",
    default=DEFAULT_MODEL_NAME,
    show_default=True,
    envvar="RAG_MODEL_NAME",
    help="Registered model name.",
)
@click.option(
    "--version", default="candidate", show_default=True, help="Version number or alias to promote."
)
@click.option("--alias", default="production", show_default=True, help="Alias to move.")
def promote(model_name: str, version: str, alias: str) -> None:
    """Point @production (or --alias) at a version or at what another alias names."""
    from experiments.errors import friendly_errors

    with friendly_errors():
        if not alias or alias.isdigit():
            raise click.BadParameter("must be a name such as 'production'", param_hint="--alias")
        new, previous = run_promote(model_name, version.strip(), alias)
    was = f" (was v{previous})" if previous else ""
    click.echo(f"{model_name}@{alias} -> version {new}{was}")


if __name__ == "__main__":
    promote()
