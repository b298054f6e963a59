"""CORS for browser clients (``RAG_CORS_ORIGINS``), with flask-cors.

Preflight ``OPTIONS`` requests need no API key (serving/security.py lets them through): the
browser sends the key with the real request. The response headers a client reads (request
id, model version, replica) are exposed to scripts.
"""

from __future__ import annotations

from flask import Flask

from rag_model.errors import ConfigError
from serving.settings import Settings

EXPOSED = ["X-Request-ID", "X-Model-Version", "X-Served-By", "Server-Timing"]
ALLOWED = ["Authorization", "Content-Type", "X-Request-ID"]


def origins(setting: str) -> list[str]:
    """The origins in RAG_CORS_ORIGINS; each must be ``*`` or ``scheme://host[:port]``.

    Raises:
        ConfigError: an origin with a path, or without a scheme.
    """
    found = [origin.strip() for origin in setting.split(",") if origin.strip()]
    for origin in found:
        scheme, _, rest = origin.partition("://")
        if origin != "*" and (scheme not in ("http", "https") or not rest or "/" in rest):
            raise ConfigError(
                f"RAG_CORS_ORIGINS: {origin!r} is not an origin; write scheme://host[:port] "
                "(no path), comma-separated, or *"
            )
    return found


def init_cors(app: Flask, settings: Settings) -> None:
    """Send CORS headers for RAG_CORS_ORIGINS (nothing when it is empty)."""
    allowed = origins(settings.cors_origins)
    if not allowed:
        return
    from flask_cors import CORS

    CORS(
        app,
        origins="*" if "*" in allowed else allowed,
        allow_headers=ALLOWED,
        expose_headers=EXPOSED,
        methods=["GET", "POST", "OPTIONS"],
        max_age=600,
    )
