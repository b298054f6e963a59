"""``rag-model diff A B``: what changed between two model versions (or aliases).

Documents added, removed and changed (from each version's ``index/documents.json``, the
sha256 of every document and its chunk ids), chunk counts, config differences and the deltas
of the evaluation metrics both versions carry. ``main`` logs the diff of each new version
against ``@production`` as ``diff/production.json`` with ``diff.*`` tags, and the version's
report shows it.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

from experiments.params import model_name_option, option
from rag_model.corpus_table import DOCUMENTS_FILE, compare_tables, read_documents_table
from rag_model.errors import IntegrityError
from rag_model.packaging.registry import CANDIDATE, PRODUCTION
from rag_model.packaging.version_files import ARTIFACT_INDEX

DIFF_ARTIFACT = "diff/production.json"
SHOWN_IDS = 20  # ids listed per kind in the text output; the JSON has them all


@dataclass(frozen=True)
class Side:
    """One version as the diff sees it."""

    label: str  # "3" or "production (3)"
    uri: str
    manifest: dict[str, Any]
    documents: dict[str, dict[str, Any]] | None
    config: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class VersionDiff:
    """Everything ``rag-model diff`` prints (``to_dict`` is the logged JSON)."""

    before: str
    after: str
    documents: dict[str, Any] | None  # DocumentChanges.to_dict(), None: a side has no table
    chunk_count: tuple[int, int]
    config: dict[str, tuple[Any, Any]]
    metrics: dict[str, tuple[float, float, float]]  # before, after, delta
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def tags(self) -> dict[str, str]:
        """The ``diff.*`` tags of a run or version (documents, chunks, config keys)."""
        tags = {"diff.against": self.before, "diff.config_changes": str(len(self.config))}
        if self.documents is not None:
            for kind in ("added", "removed", "changed"):
                tags[f"diff.documents_{kind}"] = str(len(self.documents[kind]))
        tags["diff.chunks_delta"] = str(self.chunk_count[1] - self.chunk_count[0])
        return tags


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"section.field": value}`` of a nested config."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def compare(before: Side, after: Side) -> VersionDiff:
    """The diff of two loaded versions."""
    documents, note = None, ""
    if before.documents is None or after.documents is None:
        older = before.label if before.documents is None else after.label
        note = (
            f"version {older} records no documents table (built before rag-model recorded "
            "one): rebuild it to compare documents"
        )
    else:
        documents = compare_tables(before.documents, after.documents).to_dict()
    old, new = flatten(before.config), flatten(after.config)
    config = {
        key: (old.get(key), new.get(key))
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    }
    metrics = {
        name: (
            before.metrics[name],
            after.metrics[name],
            after.metrics[name] - before.metrics[name],
        )
        for name in sorted(set(before.metrics) & set(after.metrics))
    }
    return VersionDiff(
        before=before.label,
        after=after.label,
        documents=documents,
        chunk_count=(int(before.manifest["chunk_count"]), int(after.manifest["chunk_count"])),
        config=config,
        metrics=metrics,
        note=note,
    )


def load_side(model_uri: str, label: str, metrics: dict[str, float] | None = None) -> Side:
    """Read a logged model's index manifest, documents table and config (no Chroma files)."""
    import yaml
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from rag_model.manifest import read_manifest

    repository = get_artifact_repository(model_uri)
    with tempfile.TemporaryDirectory(prefix="rag-model-diff-") as tmp:
        folder = Path(tmp)
        mlmodel = Path(repository.download_artifacts("MLmodel", str(folder)))
        # the repository keeps the relative path under the destination folder
        index = folder / "artifacts" / ARTIFACT_INDEX
        for name in ("manifest.json", DOCUMENTS_FILE):
            try:
                repository.download_artifacts(f"artifacts/{ARTIFACT_INDEX}/{name}", str(folder))
            except Exception:  # noqa: BLE001 - an older version has no documents table
                if name != DOCUMENTS_FILE:
                    raise
        manifest = read_manifest(index)
        table = read_documents_table(index)
        if table is not None and DOCUMENTS_FILE in manifest["files"]:
            from rag_model.manifest import sha256_file

            if sha256_file(index / DOCUMENTS_FILE) != manifest["files"][DOCUMENTS_FILE]:
                raise IntegrityError(
                    f"{model_uri}: {DOCUMENTS_FILE} does not match its manifest; the version's "
                    "artifacts were altered: log the model again"
                )
        flavors = yaml.safe_load(mlmodel.read_text()).get("flavors", {})
        # pyfunc keeps log_model's model_config under its flavor's "config"
        config = flavors.get("python_function", {}).get("config") or {}
    return Side(label, model_uri, manifest, table, config, metrics or {})


def version_side(name: str, version_or_alias: str) -> Side:
    """Resolve ``3``, ``production`` or ``@production`` of ``name`` and load it."""
    from mlflow.tracking import MlflowClient

    from rag_model.gate import Evaluation
    from rag_model.packaging.registry import resolve_version

    client = MlflowClient()
    ref = resolve_version(name, version_or_alias.lstrip("@"), client)
    tags = client.get_model_version(name, ref.version).tags
    evaluation = Evaluation.from_tags(ref.version, tags)
    label = f"{ref.alias} ({ref.version})" if ref.alias else ref.version
    return load_side(ref.uri, label, evaluation.metrics if evaluation else {})


def diff_against_production(name: str, model_uri: str) -> VersionDiff | None:
    """The diff of a just-logged model against ``name@production``; None if there is none."""
    from mlflow.tracking import MlflowClient

    from experiments.version_report import _alias_version
    from rag_model.packaging.registry import PRODUCTION

    if _alias_version(name, PRODUCTION, MlflowClient()) is None:
        return None
    return compare(version_side(name, PRODUCTION), load_side(model_uri, "this version"))


def log_production_diff(name: str, model_uri: str) -> VersionDiff | None:
    """Log the diff against ``@production`` on the active run (artifact and ``diff.*`` tags)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from rag_model.errors import RagError

    try:
        changes = diff_against_production(name, model_uri)
    except (RagError, MlflowException, OSError) as exc:
        # the diff describes the build; it must not fail it (production's files unreadable)
        mlflow.set_tag("diff.error", f"{type(exc).__name__}: {exc}"[:5000])
        return None
    if changes is not None:
        mlflow.log_dict(changes.to_dict(), DIFF_ARTIFACT)
        mlflow.set_tags(changes.tags())
    return changes


def render(diff: VersionDiff) -> str:
    """The text ``rag-model diff`` prints."""
    lines = [f"diff {diff.before} -> {diff.after}"]
    before, after = diff.chunk_count
    lines.append(f"chunks: {before} -> {after} ({after - before:+d})")
    if diff.documents is None:
        lines.append(f"documents: unknown ({diff.note})")
    else:
        docs = diff.documents
        lines.append(
            f"documents: {len(docs['added'])} added, {len(docs['removed'])} removed, "
            f"{len(docs['changed'])} changed, {docs['unchanged']} unchanged; chunks "
            f"{docs['chunks_added']} added, {docs['chunks_removed']} removed"
        )
        for kind, sign in (("added", "+"), ("removed", "-"), ("changed", "~")):
            ids = docs[kind]
            for identifier in ids[:SHOWN_IDS]:
                lines.append(f"  {sign} {identifier}")
            if len(ids) > SHOWN_IDS:
                lines.append(f"  {sign} ... {len(ids) - SHOWN_IDS} more (--json lists all)")
    if diff.config:
        lines.append("config:")
        lines += [f"  {key}: {old!r} -> {new!r}" for key, (old, new) in diff.config.items()]
    else:
        lines.append("config: the same")
    if diff.metrics:
        lines.append("metrics (both evaluated):")
        lines += [
            f"  {name:28s} {old:.4f} -> {new:.4f} ({delta:+.4f})"
            for name, (old, new, delta) in diff.metrics.items()
        ]
    else:
        lines.append("metrics: none in common")
    return "\n".join(lines)


@click.command("diff")
@click.argument("versions", nargs=-1)
@option(
    "--before",
    default=PRODUCTION,
    show_default=True,
    help="The older version or alias (or the first argument).",
)
@option(
    "--after",
    default=CANDIDATE,
    show_default=True,
    help="The newer version or alias (or the second argument).",
)
@model_name_option
@click.option("--json", "as_json", is_flag=True, help="Print the whole diff as JSON.")
def diff(
    versions: tuple[str, ...], before: str, after: str, model_name: str, as_json: bool
) -> None:
    """What changed from one version to another: `rag-model diff production 7`.

    VERSIONS: BEFORE and AFTER as numbers or aliases (`@production` works too); without them,
    --before and --after. Prints documents added, removed and changed, chunk counts, config
    differences and the deltas of the metrics both versions were evaluated on.
    """
    from experiments.errors import friendly_errors

    if len(versions) > 2:
        raise click.UsageError(
            f"diff takes two versions, got {len(versions)}: {' '.join(versions)}"
        )
    before, after = (
        (*versions, *(before, after)[len(versions) :])[:2] if versions else (before, after)
    )
    with friendly_errors():
        result = compare(version_side(model_name, before), version_side(model_name, after))
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        click.echo(render(result))
