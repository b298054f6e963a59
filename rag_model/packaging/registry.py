"""Registry helpers: register versions, move aliases (never stages), resolve model URIs."""

from __future__ import annotations

import time
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from rag_model.errors import RagError

CANDIDATE = "candidate"
PRODUCTION = "production"
# what the stores answer for a missing model, version or alias (SQLite, REST); anything else
# (a connection refused, a 5xx) means the registry could not answer, not that nothing is there
_NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"})


class RegistryError(RagError):
    """A registered model, version or alias does not exist, or the registry refused a change."""


@dataclass(frozen=True)
class VersionRef:
    """A resolved registered-model version."""

    name: str
    version: str
    run_id: str | None
    alias: str | None = None

    @property
    def uri(self) -> str:
        """``models:/name/version``: pinned, so a later alias move cannot change what it means."""
        return f"models:/{self.name}/{self.version}"


def resolve_version(
    name: str, version_or_alias: str, client: MlflowClient | None = None
) -> VersionRef:
    """Turn ``"3"`` or ``"candidate"`` into a concrete version of ``name``.

    Raises:
        RegistryError: the model, version or alias does not exist (the message lists aliases).
        MlflowException: the registry could not answer (unreachable, failing): never reported
            as a missing model, so a caller cannot mistake an outage for "no such alias".
    """
    client = client or MlflowClient()
    try:
        if version_or_alias.isdigit():
            found: ModelVersion = client.get_model_version(name, version_or_alias)
            alias = None
        else:
            found = client.get_model_version_by_alias(name, version_or_alias)
            alias = version_or_alias
    except MlflowException as exc:
        if exc.error_code not in _NOT_FOUND_CODES:
            raise
        raise RegistryError(_not_found(client, name, version_or_alias, exc)) from None
    return VersionRef(name=name, version=str(found.version), run_id=found.run_id, alias=alias)


def resolve_model_uri(uri: str, client: MlflowClient | None = None) -> VersionRef | None:
    """For ``models:/name@alias`` or ``models:/name/version`` the version it means, else None."""
    if not uri.startswith("models:/"):
        return None
    path = uri[len("models:/") :].strip("/")
    if "@" in path:
        name, alias = path.split("@", 1)
        return resolve_version(name, alias, client)
    name, _, version = path.partition("/")
    if not version.isdigit():
        raise RegistryError(
            f"cannot resolve {uri!r}: use models:/<name>@<alias> or models:/<name>/<version>"
        )
    return resolve_version(name, version, client)


def register_version(model_uri: str, name: str, client: MlflowClient | None = None) -> VersionRef:
    """Register ``model_uri`` as a new version of ``name`` and wait until it is READY."""
    import mlflow

    version = mlflow.register_model(model_uri, name, await_registration_for=300)
    return resolve_version(name, str(version.version), client)


def set_alias(
    name: str, alias: str, version: str, reason: str = "", client: MlflowClient | None = None
) -> VersionRef:
    """Point ``alias`` at ``version`` of ``name`` and record when and why on the version.

    Returns the version the alias pointed at before, or None-free ref of the new one.
    """
    client = client or MlflowClient()
    target = resolve_version(name, version, client)
    client.set_registered_model_alias(name, alias, target.version)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    client.set_model_version_tag(name, target.version, f"{alias}_since", stamp)
    if reason:
        client.set_model_version_tag(name, target.version, f"{alias}_reason", reason)
    return VersionRef(name, target.version, target.run_id, alias)


def logged_model_id(name: str, version: str, client: MlflowClient | None = None) -> str | None:
    """The id of the LoggedModel a registered version was made from, or None.

    ``ModelVersion.model_id`` is left empty by ``mlflow.register_model`` on SQLite (3.17), but
    the version's source is the LoggedModel's own URI, ``models:/m-<id>``; a version
    registered from a run's artifacts (``runs:/...``) has none.
    """
    client = client or MlflowClient()
    return model_id_of(client.get_model_version(name, version))


def model_id_of(version: ModelVersion) -> str | None:
    """``version``'s LoggedModel id (see ``logged_model_id``)."""
    if getattr(version, "model_id", None):
        return version.model_id
    source = version.source or ""
    if source.startswith("models:/m-") and "/" not in source[len("models:/") :]:
        return source[len("models:/") :]
    return None


def current_alias_version(name: str, alias: str, client: MlflowClient | None = None) -> str | None:
    """The version ``alias`` points at now, or None if the alias is not set."""
    try:
        return resolve_version(name, alias, client).version
    except RegistryError:
        return None


def _not_found(client: MlflowClient, name: str, wanted: str, exc: MlflowException) -> str:
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        return (
            f"registered model {name!r} does not exist in {client.tracking_uri}; run "
            "'mlflow run . -e main' to build and register one, or check MLFLOW_TRACKING_URI"
        )
    aliases = ", ".join(f"{a}->v{v}" for a, v in sorted(model.aliases.items())) or "none"
    kind = "version" if wanted.isdigit() else "alias"
    return f"model {name!r} has no {kind} {wanted!r} (aliases: {aliases}): {exc.message}"
