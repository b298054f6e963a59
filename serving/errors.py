"""One JSON error shape for every failure: ``{"error": {"code", "message", "field"?}}``.

Nothing returns a traceback: a 500 is logged with its traceback and answers with the request id.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Flask, Response, g, jsonify
from werkzeug.exceptions import HTTPException

from rag_model.errors import IndexServerError

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


def register_error_handlers(app: Flask) -> None:
    """Route ApiError, HTTP errors (404, 405, 413 ...) and any other exception to JSON."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.field)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        code = re.sub(r"[^a-z]+", "_", (exc.name or "error").lower()).strip("_")
        response = error_response(exc.code or 500, code, exc.description or exc.name)
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(IndexServerError)
    def _index_unavailable(exc: IndexServerError) -> Response:
        # a server-mode index whose Chroma server went away: a state to wait out, not a bug;
        # the server's address stays in the log, not in the answer
        logger.error("request %s: %s", getattr(g, "request_id", "-"), exc)
        return error_response(
            503, "index_unavailable", "the search index is unavailable; retry later"
        )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        request_id = getattr(g, "request_id", "-")
        logger.exception("unhandled error in request %s", request_id)
        return error_response(
            500, "internal_error", f"internal error; quote request id {request_id} to the operator"
        )
