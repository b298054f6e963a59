"""Registry lifecycle: gated promotion, recorded decisions, history and rollback.

MLflow gives aliases but no gate and no record of what was in production when. Every decision
here (promoted, forced, refused, rolled back) is written on the version it concerns as a tag
``event.<sequence>`` holding JSON, plus ``promotion.*`` tags for the latest decision and a line
in the version description. Decisions are serialized by a registry-wide lock (creating a
registered model is atomic on every MLflow backend), so racing promotions end consistently:
one after the other, both recorded, each compared with the production it really replaced.
"""

from __future__ import annotations

import getpass
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from rag_model.gate import (
    DIGEST_TAG,
    Evaluation,
    GatePolicy,
    ModelMetric,
    check_gate,
    evaluation_from_model_metrics,
)
from rag_model.packaging.registry import (
    CANDIDATE,
    PRODUCTION,
    RegistryError,
    current_alias_version,
    model_id_of,
    resolve_version,
)

EVENT_PREFIX = "event."
LOCK_SUFFIX = ".promotion-lock"


class PromotionRefused(RegistryError):
    """The gate refused the promotion; the decision was recorded on the version."""

    def __init__(self, event: Event) -> None:
        super().__init__(
            f"refused to point @{event.alias} at version {event.version}: {event.reason}"
        )
        self.event = event


@dataclass(frozen=True)
class Event:
    """One recorded decision."""

    sequence: int
    time: str
    action: str  # promoted | forced | refused | rolled_back
    model: str
    alias: str
    version: str
    previous: str | None
    reason: str
    actor: str
    compared: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Event:
        return cls(**json.loads(text))


def default_actor() -> str:
    """Who is acting: ``RAG_ACTOR``, else the MLflow username, else the login name."""
    return (
        os.environ.get("RAG_ACTOR")
        or os.environ.get("MLFLOW_TRACKING_USERNAME")
        or getpass.getuser()
    )


def evaluation_of(
    name: str, version: str | None, client: MlflowClient, digest: str | None = None
) -> Evaluation | None:
    """The evaluation of a version (None for no version or no evaluation).

    Read from the metrics on the version's LoggedModel (``mlflow.get_logged_model``), on
    ``digest``'s eval set when it was evaluated on it; a version whose LoggedModel has no
    metrics with a dataset (evaluated before they were logged there, or registered from a
    run's artifacts) is read from its ``eval.*`` tags as before.
    """
    if version is None:
        return None
    found = client.get_model_version(name, version)
    model_id = model_id_of(found)
    if model_id:
        try:
            logged = client.get_logged_model(model_id)
        except MlflowException:
            logged = None  # deleted, or a store without LoggedModels: the tags still say
        if logged is not None:
            metrics = [
                ModelMetric(m.key, m.value, m.dataset_digest, m.timestamp or 0)
                for m in logged.metrics or []
            ]
            evaluation = evaluation_from_model_metrics(version, metrics, digest)
            if evaluation is not None:
                return evaluation
    return Evaluation.from_tags(version, found.tags)


def record_evaluation(
    name: str,
    version: str,
    metrics: dict[str, float],
    dataset_digest: str,
    k: int,
    run_id: str,
    client: MlflowClient | None = None,
) -> None:
    """Write an evaluation on a version as ``eval.*`` tags, which the gate reads.

    Metrics at the model's own k (``hit_rate_at_4``) are also written without the suffix
    (``hit_rate``), so versions with different k compare on what each one serves.
    """
    client = client or MlflowClient()
    tags = {f"eval.{metric}": f"{value:.6g}" for metric, value in metrics.items()}
    suffix = f"_at_{k}"
    tags.update(
        {
            f"eval.{metric.removesuffix(suffix)}": f"{value:.6g}"
            for metric, value in metrics.items()
            if metric.endswith(suffix)
        }
    )
    tags.update({DIGEST_TAG: dataset_digest, "eval.k": str(k), "eval.run_id": run_id})
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def history(name: str, client: MlflowClient | None = None) -> list[Event]:
    """Every recorded decision for ``name``, oldest first."""
    client = client or MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException:
        resolve_version(name, PRODUCTION, client)  # raises the helpful "does not exist"
    events = [
        Event.from_json(value)
        for version in client.search_model_versions(f"name = '{name}'")
        for key, value in version.tags.items()
        if key.startswith(EVENT_PREFIX)
    ]
    return sorted(events, key=lambda event: event.sequence)


def production_stack(events: list[Event], alias: str = PRODUCTION) -> list[str]:
    """Versions that held ``alias``, oldest first, with rolled-back ones popped off."""
    stack: list[str] = []
    for event in events:
        if event.alias != alias:
            continue
        if event.action in ("promoted", "forced"):
            stack.append(event.version)
        elif event.action == "rolled_back":
            while stack and stack[-1] != event.version:
                stack.pop()
            if not stack:
                stack.append(event.version)
    return stack


def promote(
    name: str,
    version: str = CANDIDATE,
    alias: str = PRODUCTION,
    policy: GatePolicy | None = None,
    *,
    force: bool = False,
    reason: str = "",
    actor: str | None = None,
    client: MlflowClient | None = None,
) -> Event:
    """Point ``alias`` at ``version`` if the gate allows it (or ``force`` with a reason).

    Returns:
        The recorded event (action ``promoted`` or ``forced``).

    Raises:
        PromotionRefused: the gate refused; the refusal is recorded on the version.
        RegistryError: the model or version does not exist, or --force came without a reason.
    """
    client = client or MlflowClient()
    policy = policy or GatePolicy()
    actor = actor or default_actor()
    if force and not reason.strip():
        raise RegistryError("--force needs a --reason saying why the gate is overridden")
    with promotion_lock(name, client):
        target = resolve_version(name, version, client)
        previous = current_alias_version(name, alias, client)
        if previous == target.version:
            raise RegistryError(f"@{alias} already points at version {target.version}")
        shadow = None
        if policy.min_shadow_agreement is not None:  # the candidate on live traffic
            from rag_model.packaging.shadow_runs import shadow_summary

            shadow = shadow_summary(name, previous, target.version, client)
        candidate = evaluation_of(name, target.version, client)
        digest = candidate.dataset_digest if candidate else None
        gate = check_gate(
            target.version,
            candidate,
            evaluation_of(name, previous, client, digest),
            policy,
            shadow,
        )
        if not gate.allowed and not force:
            event = _record(
                client,
                name,
                alias,
                target.version,
                previous,
                "refused",
                gate.reason,
                actor,
                gate.compared,
            )
            raise PromotionRefused(event)
        action = "promoted" if gate.allowed else "forced"
        why = gate.reason if gate.allowed else f"forced by {actor}: {reason} (gate: {gate.reason})"
        if gate.allowed and reason:
            why = f"{reason}; {why}"
        client.set_registered_model_alias(name, alias, target.version)
        return _record(
            client, name, alias, target.version, previous, action, why, actor, gate.compared
        )


def rollback(
    name: str,
    alias: str = PRODUCTION,
    *,
    reason: str = "",
    actor: str | None = None,
    client: MlflowClient | None = None,
) -> Event:
    """Point ``alias`` back at the version that held it before the current one.

    Raises:
        RegistryError: there is no earlier version to go back to.
    """
    client = client or MlflowClient()
    actor = actor or default_actor()
    with promotion_lock(name, client):
        current = current_alias_version(name, alias, client)
        stack = production_stack(history(name, client), alias)
        if current is None or len(stack) < 2 or stack[-1] != current:
            raise RegistryError(
                f"no earlier @{alias} version of {name!r} to roll back to "
                f"(recorded @{alias} versions: {', '.join(stack) or 'none'}, now: {current})"
            )
        target = stack[-2]
        client.set_registered_model_alias(name, alias, target)
        why = f"rolled back from version {current}" + (f": {reason}" if reason else "")
        return _record(client, name, alias, target, current, "rolled_back", why, actor, {})


@contextmanager
def promotion_lock(
    name: str, client: MlflowClient, timeout: float = 120.0, stale_after: float = 300.0
) -> Iterator[None]:
    """Hold the registry-wide promotion lock of ``name`` (a registered model ``<name>``+suffix).

    A lock older than ``stale_after`` seconds is taken to belong to a crashed process and
    removed.
    """
    lock = f"{name}{LOCK_SUFFIX}"
    token = uuid.uuid4().hex
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            client.create_registered_model(
                lock,
                tags={"token": token, "created": str(time.time())},
                description=f"held while a promotion of {name!r} is decided; safe to delete "
                f"if older than {stale_after:.0f} s",
            )
            break
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        _remove_if_stale(client, lock, stale_after)
        if time.monotonic() > deadline:
            raise RegistryError(
                f"another promotion of {name!r} has held the lock for over {timeout:.0f} s; "
                f"retry, or delete the registered model {lock!r} if its process died"
            )
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
    try:
        yield
    finally:
        try:
            if client.get_registered_model(lock).tags.get("token") == token:
                client.delete_registered_model(lock)
        except MlflowException:
            pass  # already removed as stale by someone else


def _remove_if_stale(client: MlflowClient, lock: str, stale_after: float) -> None:
    try:
        created = float(client.get_registered_model(lock).tags.get("created", "0"))
    except (MlflowException, ValueError):
        return
    if time.time() - created > stale_after:
        try:
            client.delete_registered_model(lock)
        except MlflowException:
            pass


def _record(
    client: MlflowClient,
    name: str,
    alias: str,
    version: str,
    previous: str | None,
    action: str,
    reason: str,
    actor: str,
    compared: dict[str, float],
) -> Event:
    # called under the lock, so the next sequence number is ours alone
    sequence = max((event.sequence for event in history(name, client)), default=0) + 1
    event = Event(
        sequence=sequence,
        time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        action=action,
        model=name,
        alias=alias,
        version=version,
        previous=previous,
        reason=reason,
        actor=actor,
        compared=compared,
    )
    tags: dict[str, Any] = {
        f"{EVENT_PREFIX}{sequence:06d}": event.to_json(),
        "promotion.decision": action,
        "promotion.reason": reason,
        "promotion.compared_to": previous or "none",
        "promotion.time": event.time,
        "promotion.actor": actor,
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    current = client.get_model_version(name, version).description or ""
    line = f"{event.time} {action} @{alias} by {actor}: {reason}"
    client.update_model_version(name, version, description=f"{current}\n{line}".strip())
    return event
