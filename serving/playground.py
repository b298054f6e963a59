"""``GET /``: a small page to ask a question and see the answer, its sources and the version."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response

playground = Blueprint("playground", __name__)
PAGE = Path(__file__).with_name("static") / "playground.html"


@playground.get("/")
def page() -> Response:
    """The playground page (static HTML; it calls /v1/query from the browser)."""
    return Response(PAGE.read_text(encoding="utf-8"), mimetype="text/html")
