"""``POST /v1/feedback``: a user's verdict on an answer, recorded on the answer's MLflow trace.

``{"request_id", "value": true|false|1..5, "comment"?}`` finds the trace whose
``client_request_id`` is the answer's ``X-Request-ID`` (in the experiments this worker traces
into) and records ``mlflow.log_feedback(name="user_feedback")`` with a HUMAN source whose id is
``key:`` + the first 16 hex digits of the SHA-256 of the caller's API key (never the key), or
``anonymous`` without auth. 202 with the trace id; 404 for a request id with no trace; 409 for
a request this worker answered without tracing (sampled out, or tracing off); 503 when the
tracking server cannot be reached.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Annotated

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import Counter
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

from serving.api import json_body, with_timeout
from serving.errors import ApiError
from serving.observability import REQUEST_ID
from serving.schemas import validate, whole_number
from serving.security import presented_key

feedback = Blueprint("feedback", __name__)
logger = logging.getLogger("serving")

FEEDBACK_NAME = "user_feedback"
FEEDBACK = Counter("rag_feedback_total", "POST /v1/feedback by outcome", ["outcome"])
# a trace is exported in the background: a verdict sent right after the answer may arrive
# before it, so the lookup is retried for this long before answering 404
EXPORT_WAIT_SECONDS = 3.0


class FeedbackRequest(BaseModel):
    """``POST /v1/feedback``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    request_id: str = Field(
        pattern=f"^{REQUEST_ID.pattern}$",  # also keeps quotes out of the search filter
        description="the X-Request-ID of the answer (response header)",
    )
    # 4.0 is the integer 4 in JSON Schema, as for k (serving.schemas.whole_number)
    value: StrictBool | Annotated[int, Field(ge=1, le=5), BeforeValidator(whole_number)] = Field(
        description="thumbs up/down (true/false) or a rating 1 .. 5"
    )
    comment: str | None = Field(None, max_length=2000, description="why (optional)")


class FeedbackResponse(BaseModel):
    """``202``: the feedback was recorded on the trace."""

    request_id: str
    trace_id: str
    assessment_id: str


def source_id() -> str:
    """``key:<sha256 prefix>`` of the caller's API key, or ``anonymous`` without auth."""
    token = presented_key() if current_app.extensions.get("rag_auth") else None
    if not token:
        return "anonymous"
    return "key:" + hashlib.sha256(token.encode()).hexdigest()[:16]


def _find_trace(experiment_ids: list[str], request_id: str) -> str | None:
    from mlflow import MlflowClient

    client = MlflowClient()
    deadline = time.monotonic() + EXPORT_WAIT_SECONDS
    while True:
        found = client.search_traces(
            locations=experiment_ids,
            filter_string=f"trace.client_request_id = '{request_id}'",  # REQUEST_ID: no quotes
            max_results=1,
            include_spans=False,
        )
        if found:
            return found[0].info.trace_id
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)


@feedback.post("/v1/feedback")
def post_feedback() -> Response:
    """Record a user's verdict on an answer as MLflow feedback on its trace."""
    body = validate(FeedbackRequest, json_body())
    traces = current_app.extensions.get("rag_tracing")
    if traces is None or not traces.enabled:
        FEEDBACK.labels("not_traced").inc()
        raise ApiError(
            "this server does not trace requests (RAG_TRACE_SAMPLE_RATIO is 0 or "
            "MLFLOW_TRACKING_URI is not set), so there is no trace to attach feedback to",
            409,
            "not_traced",
            "request_id",
        )
    seen, untraced_because = traces.recent.get(body.request_id)
    if seen and untraced_because:
        FEEDBACK.labels("not_traced").inc()
        raise ApiError(
            f"request {body.request_id} was answered without a trace: {untraced_because}; "
            "its feedback cannot be recorded",
            409,
            "not_traced",
            "request_id",
        )

    def record() -> tuple[str, str] | None:
        from mlflow import log_feedback
        from mlflow.entities import AssessmentSource, AssessmentSourceType

        trace_id = _find_trace(sorted(traces.experiment_ids), body.request_id)
        if trace_id is None:
            return None
        assessment = log_feedback(
            trace_id=trace_id,
            name=FEEDBACK_NAME,
            value=body.value,
            source=AssessmentSource(source_type=AssessmentSourceType.HUMAN, source_id=source_id()),
            rationale=body.comment,
        )
        return trace_id, assessment.assessment_id

    try:
        found = with_timeout(record) if traces.experiment_ids else None
    except ApiError:
        raise
    except Exception as exc:  # the tracking server: unreachable, or refusing
        FEEDBACK.labels("unavailable").inc()
        logger.warning("feedback not recorded: %s: %s", type(exc).__name__, exc)
        raise ApiError(
            "the tracking server cannot record feedback now; retry later",
            503,
            "tracking_unavailable",
        ) from None
    if found is None:
        FEEDBACK.labels("unknown").inc()
        raise ApiError(
            f"no trace with request id {body.request_id}: it is unknown, was answered by "
            "another worker without a trace, or its trace was not exported",
            404,
            "unknown_request",
            "request_id",
        )
    FEEDBACK.labels("recorded").inc()
    trace_id, assessment_id = found
    response = jsonify(
        FeedbackResponse(
            request_id=body.request_id, trace_id=trace_id, assessment_id=assessment_id
        ).model_dump()
    )
    response.status_code = 202
    return response
