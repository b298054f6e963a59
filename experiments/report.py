"""Entry point ``report``: an index page across every version of a registered model.

Each version's row shows its evaluation's headline metrics and what live traffic says (served
traces, p50/p95 latency from the traces, feedback count and share positive).

Each evaluated version's ``report.html`` is downloaded beside the index (``v<N>/report.html``)
so the folder is a self-contained site that can be opened or published as it is.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import click

from experiments.params import model_name_option, option


def build_report_index(model_name: str, out: Path) -> tuple[Path, int]:
    """Write ``index.html`` (and each version's report) into ``out``.

    Returns:
        The index path and the number of version reports linked from it.

    Raises:
        RegistryError: the registered model does not exist.
    """
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from evaluation.report.data import comparable_metrics
    from evaluation.report.index_page import IndexEntry, render_index
    from experiments.live_traffic import live_traffic
    from experiments.version_report import REPORT_DIR
    from rag_model.gate import Evaluation
    from rag_model.packaging.registry import RegistryError

    client = MlflowClient()
    try:
        model = client.get_registered_model(model_name)
    except MlflowException:
        raise RegistryError(
            f"no registered model {model_name!r}; register one with `rag-model main` first"
        ) from None
    aliases: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    entries, linked = [], 0
    for version in client.search_model_versions(f"name = '{model_name}'"):
        number = str(version.version)
        evaluation = Evaluation.from_tags(number, version.tags)
        run_id = version.tags.get("eval.run_id", "")
        href = None
        if run_id:
            target = out / f"v{number}"
            try:
                mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=f"{REPORT_DIR}/report.html", dst_path=str(target)
                )
                href, linked = f"v{number}/report.html", linked + 1
            except (MlflowException, OSError):
                href = None  # evaluated before reports existed, or its run was deleted
        entries.append(
            IndexEntry(
                version=number,
                aliases=sorted(aliases.get(number, [])),
                created=_iso(version.creation_timestamp),
                run_id=run_id,
                dataset_digest=evaluation.dataset_digest if evaluation else "",
                dataset_name=version.tags.get("eval.dataset_name", ""),
                metrics={
                    **(comparable_metrics(evaluation.metrics) if evaluation else {}),
                    **live_traffic(model_name, number, client).metrics(),
                },
                report_href=href,
            )
        )
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.html"
    index.write_text(
        render_index(model_name, entries, datetime.now(UTC).isoformat(timespec="seconds")),
        encoding="utf-8",
    )
    return index, linked


def _iso(milliseconds: int | None) -> str:
    if not milliseconds:
        return ""
    return datetime.fromtimestamp(milliseconds / 1000, UTC).isoformat(timespec="seconds")


@click.command("report")
@model_name_option
@option(
    "--out",
    default="",
    help="Folder for the site [.rag-model/reports/<model name>].",
)
def report(model_name: str, out: str) -> None:
    """Build an index page across all versions of a registered model, with their reports."""
    from experiments.errors import friendly_errors

    folder = Path(out or Path(".rag-model") / "reports" / model_name)
    with friendly_errors():
        index, linked = build_report_index(model_name, folder)
        if os.environ.get("MLFLOW_RUN_ID"):  # under `mlflow run -e report`: keep it on the run
            import mlflow

            with mlflow.start_run():
                mlflow.log_artifacts(str(folder), "report_index")
    click.echo(f"wrote {index} ({linked} version report(s) linked)")
