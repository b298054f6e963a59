"""POST /v1/feedback in process: 409 for requests answered without a trace, auth, OpenAPI."""

from __future__ import annotations

from dataclasses import replace

import pytest

from rag_model.pipeline import RagPipeline
from serving import create_app
from tests.serving.conftest import TEST_SETTINGS, served_model

pytestmark = pytest.mark.integration


@pytest.mark.usefixtures("tracking_store")
def test_a_request_answered_without_a_trace_gets_409_saying_why(
    fake_pipeline: RagPipeline,
) -> None:
    # the injected version is not in this store: its trace experiment cannot be resolved
    app = create_app(replace(TEST_SETTINGS, trace_sample_ratio=1.0), served_model(fake_pipeline))
    client = app.test_client()
    asked = client.post(
        "/v1/query", json={"question": "What is oxygen?"}, headers={"X-Request-ID": "plain-1"}
    )
    assert asked.status_code == 200

    response = client.post("/v1/feedback", json={"request_id": "plain-1", "value": False})

    assert response.status_code == 409
    assert response.json["error"] == {
        "code": "not_traced",
        "message": "request plain-1 was answered without a trace: the trace experiment of its "
        "version could not be resolved (see the log); its feedback cannot be recorded",
        "field": "request_id",
    }


@pytest.mark.usefixtures("tracking_store")
def test_a_server_that_does_not_trace_says_so(fake_pipeline: RagPipeline) -> None:
    app = create_app(replace(TEST_SETTINGS, trace_sample_ratio=0.0), served_model(fake_pipeline))

    response = app.test_client().post("/v1/feedback", json={"request_id": "a", "value": 3})

    assert response.status_code == 409
    assert (
        "does not trace requests (RAG_TRACE_SAMPLE_RATIO is 0" in response.json["error"]["message"]
    )


def test_feedback_needs_the_api_key_like_every_route(fake_pipeline: RagPipeline) -> None:
    settings = replace(TEST_SETTINGS, trace_sample_ratio=0.0, api_keys="k1")
    client = create_app(settings, served_model(fake_pipeline)).test_client()

    response = client.post("/v1/feedback", json={"request_id": "a", "value": True})

    assert response.status_code == 401
    spec = client.get("/openapi.json").json["paths"]["/v1/feedback"]["post"]
    assert {"202", "401", "404", "409", "422"} <= set(spec["responses"])
