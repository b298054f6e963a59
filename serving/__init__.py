"""The REST server: ``create_app()`` builds the Flask app; gunicorn runs one per worker."""

from __future__ import annotations

import logging

from flask import Flask

from rag_model.offline import apply_offline_defaults
from serving.model_holder import ModelHolder, ServedModel
from serving.settings import Settings


def create_app(settings: Settings | None = None, model: ServedModel | None = None) -> Flask:
    """Build the app; with no ``model``, load ``settings.model_uri`` and follow its alias.

    Args:
        settings: server settings; default ``Settings.from_env()`` (``RAG_*`` variables).
        model: an already loaded model (tests inject one): no loading and no watching.
    """
    apply_offline_defaults()  # the server is a program: it sets them before loading a model
    from serving.api import api
    from serving.chat import chat
    from serving.cors import init_cors
    from serving.errors import register_error_handlers
    from serving.feedback import feedback
    from serving.observability import init_observability, on_model_event
    from serving.openapi import openapi
    from serving.playground import playground
    from serving.security import init_security
    from serving.tracing import init_tracing

    settings = settings or Settings.from_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    traces = init_tracing(app, settings)

    def on_event(event: str, old: str | None, new: str | None) -> None:
        on_model_event(event, old, new)
        if event in ("loaded", "reload"):  # where the new version's traces go, resolved now
            traces.prepare(holder.model)

    holder = ModelHolder(settings, model=model, on_event=on_event)
    app.extensions["rag_model"] = holder
    app.extensions["rag_settings"] = settings
    for blueprint in (api, chat, feedback, openapi, playground):
        app.register_blueprint(blueprint)
    register_error_handlers(app)
    init_observability(app, holder)
    init_security(app, settings)
    init_cors(app, settings)
    if model is None:
        from serving.shadow import init_shadow

        init_shadow(app, settings)
    if model is None:
        holder.start()
    elif model.version:
        on_event("loaded", None, model.version)
    return app
