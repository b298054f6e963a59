"""WSGI entry point: ``gunicorn serving.wsgi:app`` (same as ``"serving:create_app()"``)."""

from serving import create_app

app = create_app()
