"""docs/cli.md matches the click commands, and MLproject matches the commands' options."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from experiments.cli import cli
from experiments.cli_docs import DOC, entry_point_options, render
from experiments.params import EmptyMeansDefault, OptionalFloat, OptionalInt, option

# options of an entry point's command that are deliberately not MLproject parameters
CLI_ONLY = {
    "fake": "a smoke run with fake components, for tests and demos, not for tracked runs",
    "register": "build_index under mlflow run always registers what it logged",
    "no_cache": "sweep's MLproject `cache` parameter names the cache; disabling it is CLI-only",
    "actor": "who decides comes from RAG_ACTOR or the login name, not from a run parameter",
    "force": "MLproject passes it as a value (`force` -> the hidden --force-if)",
    "quiet": "progress goes to the run's log one line per step; --quiet is for a terminal",
    "versions": "diff's positional BEFORE AFTER; MLproject passes --before and --after",
    "as_json": "the printed diff's format; a run logs diff/production.json from main",
    "help": "click's own",
}


def test_docs_cli_md_is_what_the_commands_say() -> None:
    assert DOC.read_text(encoding="utf-8") == render(cli), (
        "docs/cli.md is stale: run `python -m experiments.cli_docs` and commit it"
    )


@pytest.mark.parametrize("entry", sorted(entry_point_options()))
def test_mlproject_parameters_are_the_commands_options_with_its_defaults(entry: str) -> None:
    command = cli.commands[entry]
    by_flag = {flag: p for p in command.params for flag in p.opts if isinstance(p, click.Option)}
    declared = entry_point_options()[entry]
    for param, (flag, default) in declared.items():
        assert flag in by_flag, f"{entry}: -P {param} is passed as {flag}, which is no option"
        target = by_flag[flag]
        if param != "force":  # the one flag passed as a value, through --force-if
            assert target.name.removesuffix("_path") in (param, param.removesuffix("_path")), (
                f"{entry}: -P {param} fills {flag} ({target.name})"
            )
        if not default:  # "" must reach the command as "not given"
            assert isinstance(target, EmptyMeansDefault) or isinstance(
                target.type, OptionalInt | OptionalFloat
            ), f"{entry}: {flag} would take -P {param}='' literally; declare it with params.option"
        assert not default or default == str(target.default), (
            f"{entry}: MLproject restates {param}'s default as {default!r}, but {flag}'s is "
            f'{target.default!r}; use "" (the option\'s default)'
        )
    # every option of the command is a parameter, or CLI-only for a stated reason
    passed = {by_flag[flag].name for flag, _ in declared.values()}
    missing = {p.name for p in command.params} - passed - set(CLI_ONLY)
    assert not missing, f"{entry}: options {sorted(missing)} are not MLproject parameters"


def test_data_paths_are_the_only_restated_defaults() -> None:
    restated = {
        param
        for options in entry_point_options().values()
        for param, (_, default) in options.items()
        if default
    }
    assert restated == {"data_path", "eval_path"}


@click.command()
@option("--split", default="test")
@option("--name", default="rag-model", envvar="TEST_RAG_NAME")
@option("--mode", type=click.Choice(["local", "spark"]), default="local")
def echo(split: str, name: str, mode: str) -> None:
    click.echo(f"{split} {name} {mode}")


def test_an_empty_option_value_means_not_given() -> None:
    runner = CliRunner()
    assert runner.invoke(echo, ["--split", "", "--name", " ", "--mode", ""]).output == (
        "test rag-model local\n"
    )
    given = runner.invoke(echo, ["--name", ""], env={"TEST_RAG_NAME": "mine"})
    assert given.output == "test mine local\n"
    assert runner.invoke(echo, ["--split", "dev"]).output == "dev rag-model local\n"
