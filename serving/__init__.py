"""The REST server: ``create_app()`` builds the Flask app; gunicorn runs one per worker."""

from __future__ import annotations

import logging
import uuid

from flask import Flask, Response, g, request

from serving.model_holder import ModelHolder, ServedModel
from serving.settings import Settings


def create_app(settings: Settings | None = None, model: ServedModel | None = None) -> Flask:
    """Build the app; with no ``model``, load ``settings.model_uri`` in the background.

    Args:
        settings: server settings; default ``Settings.from_env()`` (``RAG_*`` variables).
        model: an already loaded model (tests inject one); skips loading.
    """
    from serving.api import api
    from serving.errors import register_error_handlers

    settings = settings or Settings.from_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    holder = ModelHolder(settings.model_uri, settings.torch_threads, model=model)
    app.extensions["rag_model"] = holder
    app.extensions["rag_settings"] = settings
    app.register_blueprint(api)
    register_error_handlers(app)

    @app.before_request
    def _request_id() -> None:
        g.request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex

    @app.after_request
    def _identify(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        if holder.model is not None and holder.model.version:
            response.headers["X-Model-Version"] = holder.model.version
        return response

    holder.start()
    return app
