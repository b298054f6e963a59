"""Rate limits: storage URIs checked at start, client addresses behind proxies, Redis outages."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from rag_model.errors import ConfigError
from rag_model.pipeline import RagPipeline
from serving import create_app
from serving.settings import Settings
from tests.conftest import RedisServer, Server, free_port
from tests.serving.conftest import TEST_SETTINGS, served_model

QUESTION = {"question": "What is oxygen?"}


def app_client(pipeline: RagPipeline, **overrides: object) -> FlaskClient:
    settings = Settings(**{**TEST_SETTINGS.__dict__, **overrides})
    return create_app(settings, model=served_model(pipeline)).test_client()


def statuses(client: FlaskClient, count: int, **headers: str) -> list[int]:
    return [
        client.post("/v1/query", json=QUESTION, headers=headers).status_code for _ in range(count)
    ]


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (
            "redis//127.0.0.1:6379",
            "RAG_RATE_LIMIT_STORAGE redis//127.0.0.1:6379: unknown storage scheme : "
            "redis//127.0.0.1:6379; use memory:// or redis://host:6379/0",
        ),
        (
            "redis://127.0.0.1:port/0",
            "RAG_RATE_LIMIT_STORAGE redis://127.0.0.1:port/0: Port could not be cast to integer "
            "value as 'port'; use memory:// or redis://host:6379/0",
        ),
    ],
)
def test_a_malformed_storage_uri_stops_the_start(
    fake_pipeline: RagPipeline, uri: str, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        app_client(fake_pipeline, rate_limit="5/minute", rate_limit_storage=uri)
    assert str(error.value) == message


def test_an_unreachable_redis_stops_the_start_without_showing_its_password(
    fake_pipeline: RagPipeline,
) -> None:
    uri = f"redis://:s3cret@127.0.0.1:{free_port()}/0"  # nothing listens there
    with pytest.raises(ConfigError) as error:
        app_client(fake_pipeline, rate_limit="5/minute", rate_limit_storage=uri)
    shown = uri.replace("s3cret", "***")
    assert str(error.value) == (
        f"RAG_RATE_LIMIT_STORAGE {shown}: cannot reach it; start Redis there or fix the URI "
        "(memory:// counts in each worker instead)"
    )
    # without a limit the storage is never used, so it is not required either
    assert app_client(fake_pipeline, rate_limit_storage=uri).get("/health").status_code == 200


def test_behind_one_proxy_each_forwarded_client_has_its_own_limit(
    fake_pipeline: RagPipeline,
) -> None:
    client = app_client(fake_pipeline, rate_limit="2/hour", proxy_hops=1)
    # nginx appends the address it saw; a client's own (forged) entries before it are ignored
    first = {"X-Forwarded-For": "10.0.0.1"}
    second = {"X-Forwarded-For": "10.0.0.1, 10.0.0.2"}
    assert statuses(client, 3, **first) == [200, 200, 429]
    assert statuses(client, 3, **second) == [200, 200, 429]


def test_without_trusted_proxies_a_forwarded_header_changes_nothing(
    fake_pipeline: RagPipeline,
) -> None:
    client = app_client(fake_pipeline, rate_limit="2/hour")
    assert statuses(client, 1, **{"X-Forwarded-For": "10.0.0.1"}) == [200]
    assert statuses(client, 2, **{"X-Forwarded-For": "10.0.0.2"}) == [200, 429]


def test_every_response_names_its_server(fake_pipeline: RagPipeline) -> None:
    named = app_client(fake_pipeline, instance_name="replica-a")
    assert named.get("/health").headers["X-Served-By"] == "replica-a"
    assert named.post("/v1/query", json={"question": " "}).headers["X-Served-By"] == "replica-a"


@pytest.mark.slow
def test_redis_counts_are_shared_and_an_outage_falls_back_to_per_worker_counts(
    fake_pipeline: RagPipeline, caplog: pytest.LogCaptureFixture
) -> None:
    redis = RedisServer()
    try:
        limits = {"rate_limit": "3/hour", "rate_limit_storage": redis.url}
        one, two = app_client(fake_pipeline, **limits), app_client(fake_pipeline, **limits)
        # two apps (two workers or replicas) drawing on one count
        assert statuses(one, 2) + statuses(two, 2) == [200, 200, 200, 429]
        assert redis.client.dbsize() == 1  # the one count, in Redis
        redis.stop()
        with caplog.at_level(logging.WARNING, logger="flask-limiter"):
            # Redis gone: each app counts alone in memory, from zero, with the same limit
            assert statuses(one, 4) == [200, 200, 200, 429]
            assert statuses(two, 4) == [200, 200, 200, 429]
        assert "Rate limit storage unreachable - falling back to in-memory storage" in caplog.text
        redis = RedisServer(port=redis.port)  # back, empty (no persistence)
        deadline = time.monotonic() + 30
        # Flask-Limiter rechecks a lost storage with backoff (1, 2, 4... s): once it finds
        # Redis again, counting moves back there
        while redis.client.dbsize() == 0:
            assert time.monotonic() < deadline, "the limiter never went back to Redis"
            one.post("/v1/query", json=QUESTION)
            time.sleep(0.5)
    finally:
        redis.stop()


@pytest.mark.slow
def test_gunicorn_exits_at_start_naming_an_unreachable_redis(tmp_path: Path) -> None:
    uri = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    log = tmp_path / "server.log"
    server = Server(
        {"RAG_RATE_LIMIT": "5/minute", "RAG_RATE_LIMIT_STORAGE": uri, "RAG_TEST_LOG": str(log)},
        workers=1,
    )
    try:
        assert server.process.wait(120) == 3  # gunicorn: a worker failed to boot
    finally:
        server.stop()
    assert f"RAG_RATE_LIMIT_STORAGE {uri}: cannot reach it; start Redis there" in log.read_text()
