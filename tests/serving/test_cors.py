"""RAG_CORS_ORIGINS: browser preflights and answers carry CORS headers for allowed origins only."""

from __future__ import annotations

import pytest

from rag_model.errors import ConfigError
from rag_model.pipeline import RagPipeline
from serving import create_app
from serving.settings import Settings
from tests.serving.conftest import TEST_SETTINGS, served_model

ORIGIN = "https://app.example.com"


def client(pipeline: RagPipeline, **overrides: object):
    settings = Settings(**{**TEST_SETTINGS.__dict__, **overrides})
    return create_app(settings, model=served_model(pipeline)).test_client()


def test_an_allowed_origin_gets_cors_headers_and_a_keyless_preflight(
    fake_pipeline: RagPipeline,
) -> None:
    browser = client(fake_pipeline, cors_origins=f"{ORIGIN}, http://localhost:3000", api_keys="k")
    preflight = browser.options(
        "/v1/query",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    answer = browser.post(
        "/v1/query",
        json={"question": "What is oxygen?"},
        headers={"Origin": ORIGIN, "Authorization": "Bearer k"},
    )
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-Request-ID" in answer.headers["Access-Control-Expose-Headers"]
    other = browser.post(
        "/v1/query",
        json={"question": "q"},
        headers={"Origin": "https://evil.example", "Authorization": "Bearer k"},
    )
    assert "Access-Control-Allow-Origin" not in other.headers


def test_no_setting_sends_no_cors_headers(fake_pipeline: RagPipeline) -> None:
    response = client(fake_pipeline).get("/health", headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize("value", ["app.example.com", "https://app.example.com/path", "ftp://x"])
def test_a_bad_origin_is_refused_at_start(fake_pipeline: RagPipeline, value: str) -> None:
    with pytest.raises(ConfigError, match=f"RAG_CORS_ORIGINS: '{value}' is not an origin"):
        client(fake_pipeline, cors_origins=value)
