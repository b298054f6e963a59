"""Optional API-key auth (``Authorization: Bearer``) and per-key rate limits (Flask-Limiter)."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from flask import Flask, current_app, request
from flask_limiter import Limiter

from rag_model.errors import ConfigError
from serving.errors import ApiError
from serving.settings import Settings

# probes and the playground page itself need no key (the page asks for one to query)
PUBLIC_ENDPOINTS = {"api.health", "api.ready", "playground.page", "openapi.spec", "static"}


def load_api_keys(settings: Settings) -> list[str]:
    """Keys from RAG_API_KEYS (comma-separated) and RAG_API_KEYS_FILE (one per line)."""
    keys = [key.strip() for key in settings.api_keys.split(",") if key.strip()]
    if settings.api_keys_file:
        try:
            text = Path(settings.api_keys_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"RAG_API_KEYS_FILE {settings.api_keys_file}: cannot read it ({exc.strerror})"
            ) from None
        keys += [line.strip() for line in text.splitlines() if line.strip()]
    return keys


def presented_key() -> str | None:
    """The bearer token of this request, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def init_security(app: Flask, settings: Settings) -> None:
    """Require a key on every non-public route when keys are configured; apply rate limits."""
    keys = [key.encode() for key in load_api_keys(settings)]
    app.extensions["rag_auth"] = bool(keys)
    # digests only: lets serving.observability refuse a key sent as a request id
    app.extensions["rag_key_digests"] = frozenset(hashlib.sha256(key).digest() for key in keys)

    @app.before_request
    def _authenticate() -> None:
        if not keys or request.endpoint in PUBLIC_ENDPOINTS or request.method == "OPTIONS":
            return
        token = presented_key()
        # compare with every key, in constant time each, so timing tells nothing
        matched = False
        for key in keys:
            matched |= hmac.compare_digest(key, (token or "").encode())
        if not matched:
            raise ApiError(
                "missing or invalid API key; send 'Authorization: Bearer <key>'",
                401,
                "unauthorized",
            )

    limiter = Limiter(
        key_func=_rate_key,
        app=app,
        default_limits=[settings.rate_limit] if settings.rate_limit else [],
        storage_uri=settings.rate_limit_storage,
        headers_enabled=True,
    )
    for endpoint in PUBLIC_ENDPOINTS | {"metrics"}:
        view = app.view_functions.get(endpoint)
        if view is not None:
            limiter.exempt(view)


def _rate_key() -> str:
    token = presented_key() if current_app.extensions.get("rag_auth") else None
    if token:  # counted per key, but the key itself never reaches the limiter's storage
        return "key:" + hashlib.sha256(token.encode()).hexdigest()[:24]
    return f"addr:{request.remote_addr}"
