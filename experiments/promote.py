"""Entry point ``promote``: move ``production`` to a version if the evaluation gate allows it.

Exit codes: 0 promoted, 1 error (unknown model or version, bad option), 3 refused by the gate
(the refusal is recorded on the version).
"""

from __future__ import annotations

import click

from experiments.params import OptionalFloat, alias_option, model_name_option, option
from rag_model.packaging.registry import CANDIDATE, PRODUCTION

REFUSED_EXIT_CODE = 3


class Refused(click.ClickException):
    exit_code = REFUSED_EXIT_CODE


@click.command("promote")
@model_name_option
@option(
    "--version", default=CANDIDATE, show_default=True, help="Version number or alias to promote."
)
@alias_option
@option("--primary-metric", default="", help="Gate metric (higher is better) [hit_rate].")
@option(
    "--tolerance",
    type=OptionalFloat(),
    default="",
    help="Allowed drop of the primary metric [0.01].",
)
@option(
    "--max-latency-regression",
    type=OptionalFloat(),
    default="",
    help="Allowed relative growth of p95 latency [0.25].",
)
@option(
    "--min-shadow-agreement",
    type=OptionalFloat(),
    default="",
    help="Require shadow pairs against production with at least this top-1 agreement (0-1).",
)
@option("--force", is_flag=True, help="Override a refusal (needs --reason; recorded).")
@option(
    "--force-if",
    type=click.BOOL,
    default=False,
    hidden=True,
    help="--force as a true/false value, for MLproject params.",
)
@option("--reason", default="", help="Why; recorded with the decision.")
@option("--actor", default="", envvar="RAG_ACTOR", help="Who decides [login name].")
def promote(
    model_name: str,
    version: str,
    alias: str,
    primary_metric: str,
    tolerance: float | None,
    max_latency_regression: float | None,
    min_shadow_agreement: float | None,
    force: bool,
    force_if: bool,
    reason: str,
    actor: str,
) -> None:
    """Point @production (or --alias) at a version if its evaluation is not worse."""
    from experiments.errors import friendly_errors
    from rag_model.gate import GatePolicy
    from rag_model.packaging.lifecycle import PromotionRefused
    from rag_model.packaging.lifecycle import promote as promote_version

    if not alias or alias.isdigit():
        raise click.BadParameter(f"must be a name such as {PRODUCTION!r}", param_hint="--alias")
    with friendly_errors():
        overrides = {
            "primary_metric": primary_metric,
            "tolerance": tolerance,
            "max_latency_regression": max_latency_regression,
            "min_shadow_agreement": min_shadow_agreement,
        }
        policy = GatePolicy(**{k: v for k, v in overrides.items() if v not in (None, "")})
        try:
            event = promote_version(
                model_name,
                version.strip(),
                alias,
                policy,
                force=force or force_if,
                reason=reason,
                actor=actor or None,
            )
        except PromotionRefused as refused:
            raise Refused(f"{refused} (recorded on version {refused.event.version})") from None
    was = f" (was v{event.previous})" if event.previous else ""
    click.echo(f"{model_name}@{alias} -> version {event.version}{was}: {event.action}")
    click.echo(f"  {event.reason}")


if __name__ == "__main__":
    promote()
