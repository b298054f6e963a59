"""Documents scoped per API key (serving/scopes.py), with the fake model and Flask's test client.

The same crafted filters run against a real gunicorn server in test_teams_server.py.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from rag_model.errors import ConfigError
from rag_model.pipeline import RagPipeline
from rag_model.query import CheckedFilter
from serving import create_app
from serving.scopes import combine, parse_keys_file
from serving.settings import Settings
from tests.serving.conftest import TEST_SETTINGS, served_model
from tests.serving.scope_cases import (
    A_TITLES,
    B_TITLES,
    CRAFTED,
    KEY_A,
    KEY_B,
    KEY_OPS,
    keys_yaml,
    sha,
    stream_sources,
    titles_by_route,
    write_keys,
)

SETTINGS = {**TEST_SETTINGS.__dict__, "max_batch": 8}


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.yaml"
    write_keys(path, keys_yaml())
    return path


@pytest.fixture
def scoped_client(fake_pipeline: RagPipeline, keys_file: Path) -> FlaskClient:
    settings = Settings(**{**SETTINGS, "api_keys_file": str(keys_file)})
    return create_app(settings, model=served_model(fake_pipeline)).test_client()


def poster(client: FlaskClient):
    def post(path: str, body: dict[str, Any], key: str) -> tuple[int, Any]:
        response = client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
        if body.get("stream"):
            return response.status_code, stream_sources(response.get_data(as_text=True))
        return response.status_code, response.json

    return post


@pytest.mark.parametrize("where", CRAFTED, ids=[json.dumps(w) for w in CRAFTED])
def test_no_filter_reaches_outside_the_keys_scope(scoped_client: FlaskClient, where) -> None:
    found = titles_by_route(poster(scoped_client), KEY_A, where)
    for route, titles in found.items():
        assert set(titles) <= A_TITLES, (route, titles)


def test_each_key_sees_its_own_documents(scoped_client: FlaskClient) -> None:
    post = poster(scoped_client)
    b = titles_by_route(post, KEY_B, None)
    assert all(titles and set(titles) <= B_TITLES for titles in b.values()), b
    ops = titles_by_route(post, KEY_OPS, None)
    assert "Steam engine" in ops["query"]  # unscoped: the best passages are B's


def test_a_request_filter_narrows_within_the_scope(scoped_client: FlaskClient) -> None:
    found = titles_by_route(poster(scoped_client), KEY_A, {"title": "Oxygen"})
    assert all(titles and set(titles) == {"Oxygen"} for titles in found.values()), found


def test_the_access_log_names_the_key_never_the_key_itself(
    scoped_client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="serving.access"):
        scoped_client.post(
            "/v1/query", json={"question": "q"}, headers={"Authorization": f"Bearer {KEY_A}"}
        )
        scoped_client.post("/v1/query", json={"question": "q"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "serving.access"]
    assert [line["key"] for line in lines] == ["team-a", None]
    assert KEY_A not in caplog.text and sha(KEY_A) not in caplog.text


def test_a_changed_keys_file_applies_to_the_next_request(
    scoped_client: FlaskClient, keys_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    post = poster(scoped_client)
    write_keys(keys_file, keys_yaml("{title: Oxygen}"))
    status, body = post("/v1/query", {"question": "What is oxygen?", "k": 5}, KEY_A)
    assert {s["metadata"]["title"] for s in body["sources"]} == {"Oxygen"}
    # a bad edit keeps the last good keys, and says so
    with caplog.at_level(logging.ERROR, logger="serving.scopes"):
        write_keys(keys_file, keys_yaml("everything"))
        status, body = post("/v1/query", {"question": "What is oxygen?", "k": 5}, KEY_A)
    assert status == 200
    assert {s["metadata"]["title"] for s in body["sources"]} == {"Oxygen"}
    assert "keys[0].scope must be a non-empty filter" in caplog.text
    assert "keeping the 3 keys read before" in caplog.text
    # a key removed from the file is refused at once
    write_keys(keys_file, keys_yaml().replace(sha(KEY_B), sha("another-key")))
    assert post("/v1/query", {"question": "q"}, KEY_B)[0] == 401


def test_the_one_key_per_line_file_still_works(fake_pipeline: RagPipeline, tmp_path: Path):
    path = tmp_path / "keys.txt"
    path.write_text("plain-key\n\nother-key\n")
    settings = Settings(**{**SETTINGS, "api_keys_file": str(path)})
    client = create_app(settings, model=served_model(fake_pipeline)).test_client()
    found = titles_by_route(poster(client), "plain-key", None)
    assert "Steam engine" in found["query"]  # old keys see every document
    assert poster(client)("/v1/query", {"question": "q"}, "nope")[0] == 401


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("keys:\n", "'keys' must be a list"),
        ("keys: [1]\n", r"keys\[0\] must be a mapping"),
        (f"keys:\n  - {{name: a, sha256: {sha('k')}}}\n", "lacks scope .*write 'scope: all'"),
        (f"keys:\n  - {{name: a, sha256: {sha('k')}, scope: {{}}}}\n", "non-empty filter"),
        ("keys:\n  - {name: a, sha256: the-key-itself, scope: all}\n", "64 hex digits"),
        (f"keys:\n  - {{name: 'a b', sha256: {sha('k')}, scope: all}}\n", "name must be"),
        (
            f"keys:\n  - {{name: a, sha256: {sha('k')}, scope: {{title: {{$like: x}}}}}}\n",
            r"keys\[0\].scope: filter\['title'\]",
        ),
        (
            f"keys:\n  - {{name: a, sha256: {sha('k')}, scope: all}}\n"
            f"  - {{name: a, sha256: {sha('j')}, scope: all}}\n",
            "name a appears more than once",
        ),
        (f"keys:\n  - {{name: a, sha256: {sha('k')}, scope: all, team: x}}\n", "unknown fields"),
        ("keys: [\n", "not valid YAML"),
    ],
)
def test_a_bad_keys_file_is_refused_at_start(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"RAG_API_KEYS_FILE {path}: .*{message}"):
        parse_keys_file(path)


def test_scopes_are_anded_flat() -> None:
    scope = CheckedFilter({"$and": [{"team": "a"}, {"year": {"$gt": 2000}}]})
    assert combine(scope, {"$and": [{"x": 1}, {"y": 2}]}) == {
        "$and": [{"team": "a"}, {"year": {"$gt": 2000}}, {"x": 1}, {"y": 2}]
    }
    assert combine(scope, None) is scope
    assert combine(None, {"x": 1}) == {"x": 1}
