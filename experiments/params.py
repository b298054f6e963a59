"""Click parameter types for MLproject params, which MLflow passes through unvalidated.

Every MLproject parameter is passed to its command as ``--option {param}``, and an MLproject
default of ``""`` means "the command's own default": options declared with :func:`option`
read an empty value as not given, so the defaults live in the click options (and, for the
pipeline, in ``RagConfig``) and nowhere else.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import click

from rag_model.packaging.registry import PRODUCTION

DEFAULT_MODEL_NAME = "rag-model"


class EmptyMeansDefault(click.Option):
    """An option whose empty value (``--split ""``) counts as not given.

    Then its environment variable, else its default applies, exactly as when it is left out:
    MLproject can pass every parameter without restating (or contradicting) a default.
    """

    def consume_value(self, ctx: click.Context, opts: Mapping[str, Any]) -> tuple[Any, Any]:
        given = opts.get(self.name) if self.name else None
        if isinstance(given, str) and not given.strip():
            opts = {name: value for name, value in opts.items() if name != self.name}
        return super().consume_value(ctx, opts)


# use this instead of click.option in the entry points
option = functools.partial(click.option, cls=EmptyMeansDefault)

# declared once, used by every command that names a registered model or an alias
model_name_option = option(
    "--model-name",
    default=DEFAULT_MODEL_NAME,
    show_default=True,
    envvar="RAG_MODEL_NAME",
    help="Registered model name.",
)
alias_option = option("--alias", default=PRODUCTION, show_default=True, help="Alias.")


class OptionalInt(click.ParamType):
    """An integer >= ``minimum``; an empty string means "use the config's default"."""

    name = "integer"

    def __init__(self, minimum: int = 0) -> None:
        self.minimum = minimum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or isinstance(value, int):
            number = value
        elif str(value).strip() == "":
            return None
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not an integer", param, ctx)
        if number is not None and number < self.minimum:
            self.fail(f"{number} is below the minimum {self.minimum}", param, ctx)
        return number


def config_overrides(**flat: int | None) -> dict[str, int]:
    """The ``section.field`` overrides that were actually given (None means not given)."""
    return {key: value for key, value in flat.items() if value is not None}


class OptionalFloat(click.ParamType):
    """A number >= 0; an empty string means "use the default"."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or isinstance(value, float):
            return value
        if str(value).strip() == "":
            return None
        try:
            number = float(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not a number", param, ctx)
        if not number >= 0:  # also refuses NaN
            self.fail(f"{value!r} must be a number >= 0", param, ctx)
        return number
