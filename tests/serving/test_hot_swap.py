"""The watcher: load in the background, follow the alias, swap safely, never swap in a failure."""

from __future__ import annotations

import time
from types import SimpleNamespace

from serving.model_holder import ModelHolder, ServedModel, backoff_delay
from serving.observability import on_model_event
from serving.settings import Settings

URI = "models:/demo@production"


def fake_model(version: str, closed: list[str]) -> ServedModel:
    index = SimpleNamespace(close=lambda: closed.append(version))
    pipeline = SimpleNamespace(index=index)
    return ServedModel(
        pipeline=pipeline,
        uri=f"models:/demo/{version}",
        name="demo",
        version=version,
    )


class Registry:
    """A fake alias and loader: ``alias`` is what the registry says; ``broken`` fail to load."""

    def __init__(self) -> None:
        self.alias = "1"
        self.broken: set[str] = set()
        self.unreachable = False
        self.loads: list[str] = []
        self.closed: list[str] = []

    def resolve(self, uri: str) -> str:
        if self.unreachable:
            raise ConnectionError("tracking server down")
        return self.alias

    def load(self, uri: str, settings: Settings) -> ServedModel:
        version = uri.rsplit("/", 1)[-1] if "@" not in uri else self.alias
        self.loads.append(version)
        if version in self.broken:
            raise ValueError(f"file chroma/chroma.sqlite3 of version {version} was altered")
        return fake_model(version, self.closed)


def holder_for(registry: Registry) -> ModelHolder:
    events: list[tuple] = []
    holder = ModelHolder(
        Settings(model_uri=URI, poll_seconds=3600),
        loader=registry.load,
        resolver=registry.resolve,
        on_event=lambda *e: events.append(e),
    )
    holder.events = events  # type: ignore[attr-defined]
    holder.start()
    assert holder.wait(10) == "ready"
    return holder


def test_loads_in_the_background_and_reports_details() -> None:
    registry = Registry()
    holder = holder_for(registry)
    assert holder.model.version == "1"
    details = holder.details()
    assert details["state"] == "ready"
    assert details["watch"]["reloads"] == 0
    assert holder.events == [("loaded", None, "1")]  # type: ignore[attr-defined]
    holder.check_now()
    assert registry.loads == ["1"]  # same version: nothing reloaded
    holder.stop()


def test_alias_move_swaps_and_releases_the_old_version_after_in_flight_requests() -> None:
    registry = Registry()
    holder = holder_for(registry)
    with holder.serving() as in_flight:
        registry.alias = "2"
        holder.check_now()
        assert holder.model.version == "2"
        assert in_flight.version == "1"  # the running request keeps its version
        assert registry.closed == []  # ... which is not released under it
    assert registry.closed == ["1"]
    assert holder.reloads == 1
    assert holder.events[-1] == ("reload", "1", "2")  # type: ignore[attr-defined]
    holder.stop()


def test_a_version_that_fails_to_load_never_replaces_the_working_one() -> None:
    registry = Registry()
    holder = holder_for(registry)
    registry.alias, registry.broken = "3", {"3"}
    holder.check_now()
    assert holder.model.version == "1"
    assert holder.reload_failures == 1
    failure = holder.details()["watch"]["last_failure"]
    assert failure["version"] == "3"
    assert "chroma/chroma.sqlite3 of version 3 was altered" in failure["error"]
    holder.check_now()
    assert registry.loads == ["1", "3"]  # a failed version is not retried every poll
    registry.alias = "4"
    holder.check_now()
    assert holder.model.version == "4"
    holder.stop()


def test_an_unreachable_registry_keeps_the_server_serving() -> None:
    registry = Registry()
    holder = holder_for(registry)
    registry.unreachable = True
    holder.check_now()
    assert holder.model.version == "1"
    check = holder.details()["watch"]["last_check"]
    assert check["ok"] is False
    assert "tracking server down" in check["error"]
    holder.stop()


def test_first_load_is_retried_until_it_works() -> None:
    registry = Registry()
    registry.broken = {"1"}
    holder = ModelHolder(
        Settings(model_uri=URI, poll_seconds=3600), loader=registry.load, resolver=registry.resolve
    )
    holder.start()
    assert holder.wait(10) == "failed"
    assert "was altered" in holder.error
    registry.broken = set()
    deadline = time.monotonic() + 10
    while holder.state != "ready" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert holder.state == "ready"
    assert holder.error is None
    holder.stop()


class Clock:
    """A clock the test moves by hand: backoff is checked without sleeping."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # 2027-01-15T08:00:00Z

    def __call__(self) -> float:
        return self.now


def test_an_unreachable_registry_is_retried_with_capped_exponential_backoff() -> None:
    registry, clock, events = Registry(), Clock(), []
    holder = ModelHolder(
        Settings(model_uri=URI, poll_seconds=10, watch_max_backoff_seconds=60),
        model=fake_model("1", registry.closed),
        loader=registry.load,
        resolver=registry.resolve,
        on_event=lambda *event: events.append(event),
        clock=clock,
    )  # not started: the test drives the watcher's steps itself
    registry.unreachable = True
    seen = []
    for _ in range(5):
        holder.check_now()
        watch = holder.details()["watch"]
        seen.append((watch["consecutive_failures"], watch["backoff_seconds"]))
        clock.now += watch["backoff_seconds"]
    assert seen == [(1, 20), (2, 40), (3, 60), (4, 60), (5, 60)]
    # checks at 08:00:00, :00:20, :01:00, :02:00 and :03:00; the next one a minute later
    assert watch["next_check_at"] == "2027-01-15T08:04:00Z"
    assert watch["last_check"] == {
        "at": "2027-01-15T08:03:00Z",
        "ok": False,
        "error": "ConnectionError: tracking server down",
    }
    assert holder.model.version == "1"  # served all along
    assert events == [("watch_failure", "1", None)] * 5

    registry.unreachable, registry.alias = False, "2"  # back, and the alias moved meanwhile
    holder.check_now()
    watch = holder.details()["watch"]
    assert holder.model.version == "2"
    assert (watch["consecutive_failures"], watch["backoff_seconds"]) == (0, 10)
    assert watch["next_check_at"] == "2027-01-15T08:04:10Z"
    assert watch["last_check"]["ok"] is True
    registry.unreachable = True  # a new outage starts again from the shortest delay
    holder.check_now()
    assert (holder.watch_failures, holder.backoff_seconds) == (1, 20)


def test_backoff_never_drops_below_the_poll_interval() -> None:
    assert [backoff_delay(n, 1, 8) for n in range(6)] == [1, 2, 4, 8, 8, 8]
    assert backoff_delay(3, 30, 10) == 30  # a cap below the poll interval: just poll


def test_watch_failures_are_counted_without_touching_the_served_version() -> None:
    from prometheus_client import REGISTRY

    def sample(name: str, labels: dict[str, str] | None = None) -> float:
        return REGISTRY.get_sample_value(name, labels or {}) or 0.0

    on_model_event("loaded", None, "7")
    before = sample("rag_model_watch_failures_total")
    on_model_event("watch_failure", "7", None)
    on_model_event("watch_failure", "7", None)
    assert sample("rag_model_watch_failures_total") == before + 2
    assert sample("rag_model_version_info", {"version": "7"}) == 1
