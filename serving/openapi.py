"""``GET /openapi.json``: the API described by the same pydantic models that validate it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

import rag_model
from serving import schemas

openapi = Blueprint("openapi", __name__)

ERRORS = {
    "400": "malformed JSON or request",
    "401": "missing or invalid API key (when keys are configured)",
    "404": "unknown route or model",
    "405": "method not allowed",
    "413": "body or batch too large",
    "415": "not application/json",
    "422": "a field is invalid (named in error.field)",
    "429": "rate limit exceeded",
    "503": "no model loaded yet",
    "504": "the request took longer than RAG_REQUEST_TIMEOUT",
    "500": "internal error (logged; only the request id is returned)",
}

# (path, method, summary, request model, response model, error statuses)
ROUTES: list[tuple[str, str, str, type[BaseModel] | None, type[BaseModel], tuple[str, ...]]] = [
    (
        "/v1/query",
        "post",
        "Answer one question",
        schemas.QueryRequest,
        schemas.QueryResponse,
        ("400", "413", "415", "422", "429", "503", "504"),
    ),
    (
        "/v1/query/batch",
        "post",
        "Answer several questions",
        schemas.BatchQueryRequest,
        schemas.BatchQueryResponse,
        ("400", "413", "415", "422", "429", "503", "504"),
    ),
    (
        "/invocations",
        "post",
        "MLflow scoring protocol",
        schemas.InvocationsRequest,
        schemas.InvocationsResponse,
        ("400", "413", "415", "422", "429", "503", "504"),
    ),
    (
        "/v1/chat/completions",
        "post",
        "OpenAI-compatible chat (stream: true for SSE)",
        schemas.ChatCompletionRequest,
        schemas.ChatCompletionResponse,
        ("400", "404", "413", "415", "422", "429", "503", "504"),
    ),
    ("/health", "get", "Liveness", None, schemas.HealthResponse, ()),
    (
        "/ready",
        "get",
        "Readiness (503 with details until a model is loaded)",
        None,
        schemas.ReadyResponse,
        ("503",),
    ),
    ("/version", "get", "The served model version", None, schemas.ModelInfo, ("503",)),
]


def build_spec(auth: bool) -> dict[str, Any]:
    """The OpenAPI 3.1 document; ``auth`` adds the bearer scheme to the protected routes."""
    models = {model for route in ROUTES for model in (route[3], route[4]) if model is not None}
    models.add(schemas.ErrorResponse)
    _, top = models_json_schema(
        [(model, "validation") for model in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, Any] = {}
    for path, method, summary, request_model, response_model, errors in ROUTES:
        operation: dict[str, Any] = {
            "summary": summary,
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {"application/json": {"schema": _ref(response_model)}},
                },
                **{
                    status: {
                        "description": ERRORS[status],
                        "content": {"application/json": {"schema": _ref(schemas.ErrorResponse)}},
                    }
                    for status in (*errors, "500")
                },
            },
        }
        if request_model is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(request_model)}},
            }
        if auth and path not in ("/health", "/ready"):
            operation["security"] = [{"bearer": []}]
            operation["responses"]["401"] = {
                "description": ERRORS["401"],
                "content": {"application/json": {"schema": _ref(schemas.ErrorResponse)}},
            }
        paths[path] = {method: operation}
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "rag-model", "version": rag_model.__version__},
        "paths": paths,
        "components": {"schemas": top.get("$defs", {})},
    }
    if auth:
        spec["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return spec


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


@openapi.get("/openapi.json")
def spec() -> Response:
    """This API in OpenAPI 3.1."""
    return jsonify(build_spec(bool(current_app.extensions.get("rag_auth"))))
