"""Optional API-key auth (``Authorization: Bearer``) and per-key rate limits (Flask-Limiter).

Rate-limit storage failures: a storage that cannot be reached at start is a ``ConfigError``
(the server does not start on a mistyped or missing Redis). If Redis is lost while serving,
Flask-Limiter's in-memory fallback counts the same limit in each worker until Redis answers
again (rechecked with backoff): requests keep being answered and stay bounded per worker.
Failing closed would turn a Redis outage into an outage of every replica; failing fully open
would drop the protection the limit exists for.
"""

from __future__ import annotations

import hashlib
import logging
from urllib.parse import urlsplit

from flask import Flask, current_app, g, request
from flask_limiter import Limiter
from limits.errors import ConfigurationError
from werkzeug.middleware.proxy_fix import ProxyFix

from rag_model.errors import ConfigError
from serving.errors import ApiError
from serving.scopes import KeyRing
from serving.settings import Settings

# probes and the playground page itself need no key (the page asks for one to query)
PUBLIC_ENDPOINTS = {"api.health", "api.ready", "playground.page", "openapi.spec", "static"}
# a request must not hang on a Redis that stopped answering (the fallback takes over instead)
REDIS_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 2}

log = logging.getLogger(__name__)


def load_api_keys(settings: Settings) -> KeyRing:
    """Keys from RAG_API_KEYS (comma-separated) and RAG_API_KEYS_FILE (serving/scopes.py).

    Raises:
        ConfigError: the file cannot be read or is malformed (naming the entry).
    """
    keys = [key.strip() for key in settings.api_keys.split(",") if key.strip()]
    return KeyRing(keys, settings.api_keys_file)


def presented_key() -> str | None:
    """The bearer token of this request, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def init_security(app: Flask, settings: Settings) -> None:
    """Require a key on every non-public route when keys are configured; apply rate limits."""
    ring = load_api_keys(settings)
    app.extensions["rag_auth"] = bool(ring.keys)
    # digests only: lets serving.observability refuse a key sent as a request id
    app.extensions["rag_key_digests"] = ring
    app.extensions["rag_keys"] = ring

    @app.before_request
    def _authenticate() -> None:
        g.rag_key_name = None  # the contract with tracing: the key's name, never the key
        g.rag_scope = None
        if not app.extensions["rag_auth"] or request.method == "OPTIONS":
            return
        ring.refresh()  # one stat: a changed keys file applies to this request
        if request.endpoint in PUBLIC_ENDPOINTS:
            return
        key = ring.match(presented_key())
        if key is None:
            raise ApiError(
                "missing or invalid API key; send 'Authorization: Bearer <key>'",
                401,
                "unauthorized",
            )
        g.rag_key_name = key.name
        g.rag_scope = key.scope

    if settings.proxy_hops:  # the client address is the one the proxies saw
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    init_rate_limits(app, settings)


def init_rate_limits(app: Flask, settings: Settings) -> Limiter:
    """Apply RAG_RATE_LIMIT to every non-public route, counted in RAG_RATE_LIMIT_STORAGE.

    Raises:
        ConfigError: the storage URI is not understood, or (with a limit set) cannot be reached.
    """
    uri = settings.rate_limit_storage
    shown = redacted(uri)
    try:
        limiter = Limiter(
            key_func=_rate_key,
            app=app,
            default_limits=[settings.rate_limit] if settings.rate_limit else [],
            storage_uri=uri,
            storage_options=REDIS_OPTIONS if uri.startswith(("redis:", "rediss:")) else {},
            in_memory_fallback_enabled=True,
            headers_enabled=True,
        )
    except (ConfigurationError, ValueError) as exc:
        raise ConfigError(
            f"RAG_RATE_LIMIT_STORAGE {shown}: {exc}; use memory:// or redis://host:6379/0"
        ) from None
    if settings.rate_limit and not uri.startswith("memory:"):
        if not limiter.storage.check():
            raise ConfigError(
                f"RAG_RATE_LIMIT_STORAGE {shown}: cannot reach it; start Redis there or fix the "
                "URI (memory:// counts in each worker instead)"
            )
        log.info("rate limit %s per client, counted in %s", settings.rate_limit, shown)
    for endpoint in PUBLIC_ENDPOINTS | {"metrics"}:
        view = app.view_functions.get(endpoint)
        if view is not None:
            limiter.exempt(view)
    return limiter


def redacted(uri: str) -> str:
    """``uri`` with any password replaced by ``***``, fit for logs and error messages."""
    parts = urlsplit(uri)
    if not parts.password:
        return uri
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def _rate_key() -> str:
    token = presented_key() if current_app.extensions.get("rag_auth") else None
    if token:  # counted per key, but the key itself never reaches the limiter's storage
        return "key:" + hashlib.sha256(token.encode()).hexdigest()[:24]
    return f"addr:{request.remote_addr}"
