"""One JSON error shape for every failure: ``{"error": {"code", "message", "field"?}}``.

Nothing returns a traceback: a 500 is logged with its traceback and answers with the request id.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from rag_model.errors import GenerationError, IndexServerError, QueryError, RagError

logger = logging.getLogger("serving")


class ApiError(Exception):
    """An error the client can fix (4xx) or a state it must wait out (503)."""

    def __init__(
        self, message: str, status: int = 400, code: str = "bad_request", field: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field


def error_response(status: int, code: str, message: str, field: str | None = None) -> Response:
    """The JSON error response every failure uses."""
    body: dict[str, Any] = {"code": code, "message": message}
    if field:
        body["field"] = field
    response = jsonify({"error": body})
    response.status_code = status
    return response


# the codes of errors raised by werkzeug and Flask-Limiter rather than by our own routes
HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


# how the core's errors reach a client: (status, code); the most specific class wins. Other
# RagErrors during a request are the server's problem: a 500 like any unexpected error
RAG_ERRORS: dict[type[RagError], tuple[int, str]] = {
    QueryError: (422, "invalid_request"),  # the client can fix it: the field is named
    GenerationError: (502, "generation_failed"),  # the LLM behind the generator failed
    IndexServerError: (503, "index_unavailable"),  # a server-mode index's Chroma went away
}


def _http_message(exc: HTTPException) -> str:
    """One line saying what was wrong and how to fix it (werkzeug's texts are generic)."""
    if exc.code == 404:
        return f"no route {request.path}; the routes are listed at /openapi.json"
    if exc.code == 405:
        allowed = ", ".join(sorted(exc.valid_methods or ()))
        return f"{request.method} is not allowed on {request.path}; use {allowed}"
    if exc.code == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        return f"body is larger than the limit of {limit} bytes (RAG_MAX_BODY_BYTES)"
    return exc.description or exc.name


def register_error_handlers(app: Flask) -> None:
    """Route ApiError, HTTP errors (404, 405, 413 ...) and any other exception to JSON."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.field)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = HTTP_CODES.get(status) or re.sub(r"[^a-z]+", "_", (exc.name or "error").lower())
        response = error_response(status, code.strip("_"), _http_message(exc))
        if status == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(RagError)
    def _rag_error(exc: RagError) -> Response:
        for kind in type(exc).__mro__:
            if kind in RAG_ERRORS:
                status, code = RAG_ERRORS[kind]
                break
        else:
            return _unexpected(exc)
        if isinstance(exc, IndexServerError):
            # a state to wait out, not a bug; the server's address stays in the log
            logger.error("request %s: %s", getattr(g, "request_id", "-"), exc)
            return error_response(status, code, "the search index is unavailable; retry later")
        return error_response(status, code, str(exc), getattr(exc, "field", None))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        request_id = getattr(g, "request_id", "-")
        logger.exception("unhandled error in request %s", request_id)
        return error_response(
            500, "internal_error", f"internal error; quote request id {request_id} to the operator"
        )
