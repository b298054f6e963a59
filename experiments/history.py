"""Entry points ``history`` and ``rollback``: what was in production when and why; go back."""

from __future__ import annotations

import click

from experiments.params import alias_option, model_name_option, option


@click.command("history")
@model_name_option
@alias_option
def history(model_name: str, alias: str) -> None:
    """List every recorded decision about @production (or --alias), oldest first."""
    from experiments.errors import friendly_errors
    from rag_model.packaging.lifecycle import history as load_history
    from rag_model.packaging.lifecycle import production_stack

    with friendly_errors():
        events = [event for event in load_history(model_name) if event.alias == alias]
    if not events:
        click.echo(f"no recorded decisions for {model_name}@{alias}")
        return
    click.echo(
        f"{'#':>3}  {'time':20}  {'action':11}  {'version':>7}  {'was':>4}  {'actor':12}  reason"
    )
    for event in events:
        click.echo(
            f"{event.sequence:>3}  {event.time:20}  {event.action:11}  {event.version:>7}  "
            f"{event.previous or '-':>4}  {event.actor[:12]:12}  {event.reason}"
        )
    stack = production_stack(events, alias)
    if stack:
        click.echo(f"@{alias} now: version {stack[-1]} ({len(set(stack))} version(s) on record)")


@click.command("rollback")
@model_name_option
@alias_option
@option("--reason", default="", help="Why; recorded with the decision.")
@option("--actor", default="", envvar="RAG_ACTOR", help="Who decides [login name].")
def rollback(model_name: str, alias: str, reason: str, actor: str) -> None:
    """Point @production back at the version that held it before the current one."""
    from experiments.errors import friendly_errors
    from rag_model.packaging.lifecycle import rollback as rollback_version

    with friendly_errors():
        event = rollback_version(model_name, alias, reason=reason, actor=actor or None)
    click.echo(
        f"{model_name}@{alias} -> version {event.version} (was v{event.previous}): {event.reason}"
    )
