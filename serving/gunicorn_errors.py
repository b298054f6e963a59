"""gunicorn's own refusals (a request line or headers too large, a malformed request) as JSON.

gunicorn answers a request it cannot parse before the app sees it, with an HTML page written
by ``gunicorn.util.write_error`` (its workers call it through the module, in gunicorn 23 to
26). ``install()`` replaces that function in the master before the fork, so every worker
answers in the app's error shape, ``{"error": {"code", "message"}}``. The message never
repeats what the client sent (an API key pasted as the method or path must not be echoed;
``serving/gunicorn_logger.py`` keeps it out of the log too).
"""

from __future__ import annotations

import json
from typing import Any

# (status, words in gunicorn's message) -> (code, message), first match wins
REFUSALS = (
    (431, "", "headers_too_large", "request headers too large: fewer or shorter headers"),
    (
        400,
        "Request Line is too large",
        "request_line_too_large",
        "request line too large (over 4094 bytes): send long input in the JSON body",
    ),
    (400, "", "bad_request", "malformed HTTP request line or headers"),
    (501, "", "not_implemented", "unsupported transfer coding"),
    (403, "", "forbidden", "request forbidden"),
    (417, "", "expectation_failed", "expectation failed"),
)


def error_body(status: int, mesg: str) -> dict[str, Any]:
    """The JSON body for gunicorn's refusal with ``status`` and its message ``mesg``."""
    for code_status, words, code, message in REFUSALS:
        if status == code_status and words in mesg:
            return {"error": {"code": code, "message": message}}
    return {"error": {"code": "internal_error", "message": "internal error"}}


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """``gunicorn.util.write_error`` with a JSON body (same signature, same connection close)."""
    from gunicorn import util

    body = json.dumps(error_body(status_int, mesg)).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def install() -> None:
    """Make gunicorn write its refusals as JSON (call in the master, before workers fork)."""
    from gunicorn import util

    util.write_error = write_json_error
