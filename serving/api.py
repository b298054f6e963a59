"""The REST routes: /v1/query, /invocations (MLflow scoring protocol), /health, /ready, /version."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from rag_model.errors import QueryError
from rag_model.packaging.schema import QUESTION_COLUMN
from serving.errors import ApiError
from serving.model_holder import ModelHolder, ServedModel
from serving.schemas import InvocationParams, QueryRequest, validate
from serving.settings import Settings

api = Blueprint("api", __name__)

SCORING_FORMATS = ("dataframe_split", "dataframe_records", "inputs", "instances")


def _holder() -> ModelHolder:
    return current_app.extensions["rag_model"]


def _settings() -> Settings:
    return current_app.extensions["rag_settings"]


def _model() -> ServedModel:
    holder = _holder()
    if holder.model is None:
        detail = f"model failed to load: {holder.error}" if holder.error else "model is loading"
        raise ApiError(f"{detail}; retry later", 503, "not_ready")
    return holder.model


def _json_body() -> Any:
    if not request.is_json:
        raise ApiError(
            f"send Content-Type: application/json (got {request.content_type or 'none'})",
            415,
            "unsupported_media_type",
        )
    raw = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(f"body is not valid JSON: {exc}", 400, "invalid_json") from None


def _check_question(question: str, field: str = "question") -> str:
    stripped = question.strip()
    if not stripped:
        raise ApiError(f"{field} must not be empty", 422, "invalid_request", field)
    limit = _settings().max_question_chars
    if len(stripped) > limit:
        raise ApiError(
            f"{field} is {len(stripped)} characters; the limit is {limit}",
            422,
            "invalid_request",
            field,
        )
    return stripped


def _check_k(k: int | None, field: str = "k") -> int | None:
    limit = _settings().max_k
    if k is not None and not 1 <= k <= limit:
        raise ApiError(
            f"{field} must be between 1 and {limit}, got {k}", 422, "invalid_request", field
        )
    return k


@api.get("/health")
def health() -> Response:
    """Liveness: the process answers."""
    return jsonify({"status": "ok"})


@api.get("/ready")
def ready() -> Response:
    """Readiness: 200 once the model is loaded and verified, else 503 with the reason."""
    model = _model()
    return jsonify({"status": "ready", "model": model.describe()})


@api.get("/version")
def version() -> Response:
    """The served model's name, version, alias, run id and load time."""
    return jsonify(_model().describe())


@api.post("/v1/query")
def query() -> Response:
    """``{question, k?, filter?, include_sources?}`` -> answer, sources, model, timings."""
    body = validate(QueryRequest, _json_body())
    question = _check_question(body.question)
    k = _check_k(body.k)
    model = _model()
    try:
        answer = model.pipeline.answer(question, k=k, where=body.filter)
    except QueryError as exc:
        raise ApiError(str(exc), 422, "invalid_request", exc.field) from None
    result = answer.to_dict(include_sources=body.include_sources)
    result["model"] = {"name": model.name, "version": model.version, "run_id": model.run_id}
    return jsonify(result)


@api.post("/invocations")
def invocations() -> Response:
    """MLflow's scoring protocol, so clients of ``mlflow models serve`` work unchanged."""
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc.scoring_server import infer_and_parse_data

    body = _json_body()
    if not isinstance(body, dict):
        raise ApiError(
            f"body must be an object with one of {', '.join(SCORING_FORMATS)}", 400, "bad_request"
        )
    formats = [key for key in SCORING_FORMATS if key in body]
    unknown = sorted(set(body) - set(SCORING_FORMATS) - {"params"})
    if len(formats) != 1 or unknown:
        raise ApiError(
            f"body must have exactly one of {', '.join(SCORING_FORMATS)} plus optional 'params'"
            + (f"; unknown key(s): {', '.join(unknown)}" if unknown else ""),
            400,
            "bad_request",
        )
    params = validate(InvocationParams, body.get("params") or {}, where="params")
    _check_k(params.k, "params.k")
    model = _model()
    try:
        data = infer_and_parse_data({formats[0]: body[formats[0]]}, model.input_schema)
    except MlflowException as exc:
        raise ApiError(exc.message, 400, "bad_request", formats[0]) from None
    data = _as_frame(data, formats[0])
    rows = len(data)
    if rows > _settings().max_batch:
        raise ApiError(
            f"{rows} rows; the limit is {_settings().max_batch} per request",
            413,
            "batch_too_large",
            formats[0],
        )
    if QUESTION_COLUMN not in data.columns:
        raise ApiError(
            f"input needs a '{QUESTION_COLUMN}' column, got {list(data.columns)}",
            422,
            "invalid_request",
            QUESTION_COLUMN,
        )
    for value in data[QUESTION_COLUMN]:
        _check_question(value if isinstance(value, str) else "", QUESTION_COLUMN)
    try:
        predictions = model.predict(data, params.model_dump(exclude_none=True))
    except QueryError as exc:
        raise ApiError(str(exc), 422, "invalid_request", exc.field) from None
    except MlflowException as exc:
        raise ApiError(exc.message, 400, "bad_request") from None
    return jsonify({"predictions": predictions})


def _as_frame(data: Any, field: str) -> Any:
    """MLflow parses ``inputs``/``instances`` into a dict of arrays or an array: make a frame."""
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    try:
        if isinstance(data, dict):
            return pd.DataFrame({key: np.asarray(value).ravel() for key, value in data.items()})
        return pd.DataFrame({QUESTION_COLUMN: np.asarray(data).ravel()})
    except ValueError as exc:  # columns of different lengths
        raise ApiError(
            f"cannot read {field} as rows of questions: {exc}", 400, "bad_request", field
        ) from None
