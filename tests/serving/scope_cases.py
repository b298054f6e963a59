"""Two scoped teams and crafted filters that try to reach the other team's documents.

Shared by the fast tests (Flask's test client) and the gunicorn ones: each route's answer is
reduced to the titles of its sources, which must all be in team A's scope.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

KEY_A, KEY_B, KEY_OPS = "team-a-secret-key", "team-b-secret-key", "ops-secret-key"
A_TITLES = {"Normans", "Oxygen"}
B_TITLES = {"Steam engine"}
# questions whose best passages are B's: an unscoped answer would cite them
QUESTIONS = ["How does a steam engine work?", "Who was James Watt?"]

# filters a client of A might send to widen its view, each valid in the grammar
CRAFTED = [
    None,
    {},
    {"title": "Steam engine"},
    {"title": {"$ne": "Normans"}},
    {"title": {"$nin": ["Normans", "Oxygen"]}},
    {"title": {"$in": ["Steam engine", "Black Death"]}},
    {"$or": [{"title": "Steam engine"}, {"title": "Normans"}]},
    {"$or": [{"paragraph": {"$gte": 0}}, {"title": {"$ne": "x"}}]},
    {"$and": [{"title": {"$ne": "x"}}, {"$or": [{"title": "Steam engine"}, {"paragraph": 1}]}]},
    {"$or": [{"$and": [{"title": "Steam engine"}, {"paragraph": {"$gte": 0}}]}, {"title": "x"}]},
]


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def keys_yaml(a_scope: str = "{title: {$in: [Normans, Oxygen]}}") -> str:
    return f"""# scoped keys (serving/scopes.py)
keys:
  - name: team-a
    sha256: {sha(KEY_A)}
    scope: {a_scope}
  - name: team-b
    sha256: {sha(KEY_B)}
    scope: {{title: Steam engine}}
  - name: ops
    sha256: {sha(KEY_OPS)}
    scope: all
"""


def write_keys(path: Path, text: str) -> None:
    """Replace the file in one rename, as an editor or a config manager would."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.replace(path)


Post = Callable[[str, dict[str, Any], str], tuple[int, Any]]


def titles_by_route(
    post: Post, key: str, where: dict[str, Any] | None, model: str = "fake"
) -> dict[str, list[str]]:
    """Every route's source titles for ``where``; ``post(path, body, key)`` -> (status, body)."""
    extra = {} if where is None else {"filter": where}
    question = QUESTIONS[0]
    found: dict[str, list[str]] = {}
    status, body = post("/v1/query", {"question": question, "k": 5, **extra}, key)
    assert status == 200, body
    found["query"] = [s["metadata"]["title"] for s in body["sources"]]
    status, body = post("/v1/query/batch", {"questions": QUESTIONS, "k": 5, **extra}, key)
    assert status == 200, body
    found["batch"] = [s["metadata"]["title"] for r in body["results"] for s in r["sources"]]
    params: dict[str, Any] = {"k": 5}
    if where is not None:
        params["filter"] = json.dumps(where)  # as MLflow clients send it
    status, body = post("/invocations", {"inputs": {"question": QUESTIONS}, "params": params}, key)
    assert status == 200, body
    found["invocations"] = [
        json.loads(s["metadata"])["title"] for p in body["predictions"] for s in p["sources"]
    ]
    chat = {"model": model, "messages": [{"role": "user", "content": question}], "k": 5, **extra}
    status, body = post("/v1/chat/completions", chat, key)
    assert status == 200, body
    found["chat"] = [s["metadata"]["title"] for s in body["sources"]]
    status, body = post("/v1/chat/completions", {**chat, "stream": True}, key)
    assert status == 200, body
    found["chat-stream"] = [s["metadata"]["title"] for s in body["sources"]]
    return found


def stream_sources(text: str) -> dict[str, Any]:
    """The sources a chat stream sends in its last chunk, as ``{"sources": [...]}``."""
    for line in text.splitlines():
        if line.startswith("data: {"):
            data = json.loads(line[len("data: ") :])
            if "sources" in data:
                return {"sources": data["sources"]}
    raise AssertionError(f"no sources in the stream: {text[:500]}")
