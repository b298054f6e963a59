"""``GET /openapi.json``: the API described by the same pydantic models that validate it."""

from __future__ import annotations

import copy
import functools
import sys
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

import rag_model
from rag_model.filters import filter_schemas
from serving import schemas
from serving.feedback import FeedbackRequest, FeedbackResponse
from serving.security import PUBLIC_ENDPOINTS
from serving.settings import Settings

openapi = Blueprint("openapi", __name__)

ERRORS = {
    "400": "the body is not strict JSON (RFC 8259, UTF-8)",
    "401": "missing or invalid API key (when keys are configured)",
    "404": "unknown route or model (feedback: no trace with that request id)",
    "405": "method not allowed",
    "413": "body larger than RAG_MAX_BODY_BYTES",
    "409": "the request was answered without a trace (feedback)",
    "415": "not application/json",
    "422": "a field is invalid or over a limit (named in error.field)",
    "429": "rate limit exceeded",
    "502": "the LLM behind the generator failed",
    "503": "no model loaded yet (feedback: the tracking server is unreachable)",
    "504": "the request took longer than RAG_REQUEST_TIMEOUT",
    "500": "internal error (logged; only the request id is returned)",
}


@dataclass(frozen=True)
class Route:
    """One documented operation: the Flask endpoint that serves it and what it takes and gives.

    ``response`` is the pydantic model of a JSON answer, or ``(media type, schema)`` for the
    routes that answer something else (the playground's HTML, Prometheus text).
    """

    endpoint: str
    path: str
    method: str
    summary: str
    request: type[BaseModel] | None
    response: type[BaseModel] | tuple[str, dict[str, Any]]
    errors: tuple[str, ...] = ()
    status: str = "200"  # the success status


_BODY_ERRORS = ("400", "413", "415", "422", "429", "502", "503", "504")
# Every route of the app: tests/serving/test_api_features.py checks this table against
# app.url_map (path, method and endpoint), so a route added without documenting it, or
# documented without existing, fails there.
ROUTES: tuple[Route, ...] = (
    Route(
        "api.query",
        "/v1/query",
        "post",
        "Answer one question",
        schemas.QueryRequest,
        schemas.QueryResponse,
        _BODY_ERRORS,
    ),
    Route(
        "api.query_batch",
        "/v1/query/batch",
        "post",
        "Answer several questions",
        schemas.BatchQueryRequest,
        schemas.BatchQueryResponse,
        _BODY_ERRORS,
    ),
    Route(
        "api.invocations",
        "/invocations",
        "post",
        "MLflow scoring protocol",
        schemas.InvocationsRequest,
        schemas.InvocationsResponse,
        _BODY_ERRORS,
    ),
    Route(
        "chat.chat_completions",
        "/v1/chat/completions",
        "post",
        "OpenAI-compatible chat (stream: true for SSE)",
        schemas.ChatCompletionRequest,
        schemas.ChatCompletionResponse,
        ("400", "404", *_BODY_ERRORS[1:]),
    ),
    Route(
        "feedback.post_feedback",
        "/v1/feedback",
        "post",
        "Record a user's verdict on an answer on its MLflow trace (202)",
        FeedbackRequest,
        FeedbackResponse,
        ("400", "404", "409", "413", "415", "422", "429", "503", "504"),
        status="202",
    ),
    Route(
        "chat.list_models",
        "/v1/models",
        "get",
        "OpenAI-compatible model list: the served model",
        None,
        schemas.ModelList,
        ("429", "503"),
    ),
    Route("api.health", "/health", "get", "Liveness", None, schemas.HealthResponse),
    Route(
        "api.ready",
        "/ready",
        "get",
        "Readiness (503 with details until a model is loaded)",
        None,
        schemas.ReadyResponse,
        ("503",),
    ),
    Route(
        "api.version",
        "/version",
        "get",
        "The served model version",
        None,
        schemas.ModelInfo,
        ("429", "503"),
    ),
    Route(
        "metrics",
        "/metrics",
        "get",
        "Prometheus metrics, aggregated over the workers",
        None,
        ("text/plain", {"type": "string"}),
    ),
    Route(
        "openapi.spec",
        "/openapi.json",
        "get",
        "This document",
        None,
        ("application/json", {"type": "object"}),
    ),
    Route(
        "playground.page",
        "/",
        "get",
        "The playground page",
        None,
        ("text/html", {"type": "string"}),
    ),
)


def build_spec(
    settings: Settings, auth: bool, model_names: list[str] | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1 document for a server with ``settings``.

    Args:
        settings: its limits (question length, k, batch size) become schema bounds.
        auth: add the bearer scheme (and 401) to the protected routes.
        model_names: the names chat requests may give as ``model`` (the served model's);
            None while no model is loaded: any name (answered 404 or 503).
    """
    models = {
        model
        for route in ROUTES
        for model in (route.request, route.response)
        if isinstance(model, type)
    }
    models |= {schemas.ErrorResponse, schemas.ChatCompletionChunk}
    _, top = models_json_schema(
        [(model, "validation") for model in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    # a copy: pydantic may hand out the markers' own dicts, which must keep their markers
    components = copy.deepcopy({**top.get("$defs", {}), **filter_schemas("#/components/schemas/")})
    _apply_limits(components, settings)
    if model_names:
        components["ChatCompletionRequest"]["properties"]["model"]["enum"] = model_names
    paths: dict[str, Any] = {}
    for route in ROUTES:
        media_type, schema = (
            ("application/json", _ref(route.response))
            if isinstance(route.response, type)
            else route.response
        )
        operation: dict[str, Any] = {
            "summary": route.summary,
            "responses": {
                route.status: {
                    "description": "Accepted" if route.status == "202" else "OK",
                    "content": {media_type: {"schema": schema}},
                },
                **{
                    status: {
                        "description": ERRORS[status],
                        "content": {"application/json": {"schema": _ref(schemas.ErrorResponse)}},
                    }
                    for status in (*route.errors, "500")
                },
            },
        }
        if route.request is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(route.request)}},
            }
        if auth and route.endpoint not in PUBLIC_ENDPOINTS:
            operation["security"] = [{"bearer": []}]
            operation["responses"]["401"] = {
                "description": ERRORS["401"],
                "content": {"application/json": {"schema": _ref(schemas.ErrorResponse)}},
            }
        paths.setdefault(route.path, {})[route.method] = operation
    # with stream: true: one schema per event (OpenAPI 3.1 reads an event stream's schema so)
    paths["/v1/chat/completions"]["post"]["responses"]["200"]["content"]["text/event-stream"] = {
        "schema": {
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": {
                    "description": "chat.completion.chunk events, an error if the LLM fails "
                    "mid-stream, then [DONE]",
                    "anyOf": [
                        {"const": "[DONE]"},
                        {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "contentSchema": {
                                "anyOf": [
                                    _ref(schemas.ChatCompletionChunk),
                                    _ref(schemas.ErrorResponse),
                                ]
                            },
                        },
                    ],
                }
            },
        }
    }
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "rag-model", "version": rag_model.__version__},
        "paths": paths,
        "components": {"schemas": components},
    }
    if auth:
        spec["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return spec


@functools.cache
def question_pattern() -> str:
    """A question: some character that is neither NUL nor white space (``str.strip``'s).

    The characters are spelled as u-escapes, which ECMA-262, Python and Rust
    regular expressions all read the same way.
    """
    space = "".join(f"\\u{ord(c):04x}" for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())
    return f"^[^\\u0000]*[^\\u0000{space}][^\\u0000]*$"


def _apply_limits(node: Any, settings: Settings) -> None:
    """Replace every ``x-rag-limit`` marker (serving.schemas.LIMIT) with the bounds it names."""
    if isinstance(node, list):
        for item in node:
            _apply_limits(item, settings)
        return
    if not isinstance(node, dict):
        return
    limit = node.pop(schemas.LIMIT, None)
    if limit == "question":
        node.update(maxLength=settings.max_question_chars, pattern=question_pattern())
    elif limit == "k":
        node.update(minimum=1, maximum=settings.max_k)
    elif limit == "batch":
        node.update(maxItems=settings.max_batch)
    for value in node.values():
        _apply_limits(value, settings)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


@openapi.get("/openapi.json")
def spec() -> Response:
    """This API in OpenAPI 3.1."""
    settings = current_app.extensions["rag_settings"]
    model = current_app.extensions["rag_model"].model
    names = None
    if model and model.name:
        names = [model.name] + [f"{model.name}@{model.alias}"] * bool(model.alias)
    return jsonify(build_spec(settings, bool(current_app.extensions.get("rag_auth")), names))
