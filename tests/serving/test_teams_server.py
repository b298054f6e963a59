"""One real gunicorn server (2 workers, fake model) with scoped API keys (serving/scopes.py).

Key A's crafted filters on every route, schemathesis under key A (every source in A's scope),
a keys file changed while serving, and ``GET /v1/models`` through the OpenAI SDK.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis

from serving.openapi import build_spec
from serving.settings import Settings
from tests.conftest import RegisteredModel, Server, serving_production
from tests.serving.live import wait_for
from tests.serving.scope_cases import (
    A_TITLES,
    CRAFTED,
    KEY_A,
    KEY_B,
    keys_yaml,
    sha,
    stream_sources,
    titles_by_route,
    write_keys,
)

pytestmark = pytest.mark.slow

LIMITS = {"RAG_MAX_QUESTION_CHARS": "300", "RAG_MAX_K": "10", "RAG_MAX_BATCH": "8"}
SPEC = build_spec(Settings.from_env(LIMITS), True, ["rag-model", "rag-model@production"])
CONFIG = schemathesis.Config.from_str(
    """
    seed = 20261206

    [generation]
    max-examples = 6
    deterministic = true
    database = "none"
    """
)
schema = schemathesis.openapi.from_dict(SPEC, config=CONFIG).include(
    path_regex="^/(v1/query|v1/chat|invocations)"
)


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys.yaml"
    write_keys(path, keys_yaml())
    return path


@pytest.fixture(scope="module")
def server(
    fake_registered_model: RegisteredModel,
    tmp_path_factory: pytest.TempPathFactory,
    keys_file: Path,
) -> Iterator[Server]:
    with serving_production(
        fake_registered_model,
        tmp_path_factory.mktemp("teams"),
        RAG_API_KEYS_FILE=str(keys_file),
        **LIMITS,
    ) as running:
        yield running


def post(server: Server):
    session = requests.Session()

    def send(path: str, body: dict[str, Any], key: str) -> tuple[int, Any]:
        response = session.post(
            f"{server.url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        if body.get("stream"):
            return response.status_code, stream_sources(response.text)
        return response.status_code, response.json()

    return send


def test_crafted_filters_never_reach_outside_the_scope(server: Server) -> None:
    send = post(server)
    for where in CRAFTED:
        found = titles_by_route(send, KEY_A, where, model="rag-model")
        for route, titles in found.items():
            assert set(titles) <= A_TITLES, (where, route, titles)


def source_titles(response: Any) -> list[str]:
    """The titles of every source in a JSON answer or a chat event stream."""
    if response.headers.get("Content-Type", "").startswith("text/event-stream"):
        events = [line[6:] for line in response.text.splitlines() if line.startswith("data: {")]
        bodies = [json.loads(event) for event in events]
    elif response.headers.get("Content-Type", "").startswith("application/json"):
        bodies = [response.json()]
    else:
        return []
    titles: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for source in node.get("sources") or []:
                metadata = source["metadata"]
                metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
                titles.append(metadata["title"])
            for value in node.values():
                if isinstance(value, (dict, list)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(bodies)
    return titles


@schema.parametrize()
def test_fuzzed_requests_under_key_a_stay_in_scope(case: schemathesis.Case, server: Server) -> None:
    response = case.call_and_validate(
        base_url=server.url, headers={"Authorization": f"Bearer {KEY_A}"}
    )
    titles = source_titles(response)
    assert set(titles) <= A_TITLES, titles


def test_models_list_through_the_openai_sdk(server: Server) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{server.url}/v1", api_key=KEY_A, max_retries=0)
    ids = [model.id for model in client.models.list()]
    assert ids == ["rag-model", "rag-model@production"]
    completion = client.chat.completions.create(
        model=ids[1], messages=[{"role": "user", "content": "Who was James Watt?"}]
    )
    assert completion.usage is not None and completion.usage.total_tokens == 0  # echo: counts none


def test_the_access_log_names_the_key(server: Server) -> None:
    send = post(server)
    send("/v1/query", {"question": "What is oxygen?"}, KEY_B)
    wait_for(lambda: '"key": "team-b"' in server.logs(), timeout=10)
    assert KEY_B not in server.logs() and sha(KEY_B) not in server.logs()


def test_a_changed_keys_file_applies_without_a_restart(server: Server, keys_file: Path) -> None:
    send = post(server)
    body = {"question": "What is oxygen?", "k": 5}
    try:
        write_keys(keys_file, keys_yaml("{title: Normans}"))
        # every worker sees the change on its next request
        for _ in range(6):
            status, answer = send("/v1/query", body, KEY_A)
            assert status == 200
            assert {s["metadata"]["title"] for s in answer["sources"]} == {"Normans"}
        write_keys(keys_file, keys_yaml().replace(sha(KEY_A), sha("rotated-key")))
        for _ in range(4):
            assert send("/v1/query", body, KEY_A)[0] == 401
            assert send("/v1/query", body, "rotated-key")[0] == 200
    finally:
        write_keys(keys_file, keys_yaml())
    assert "Traceback" not in server.logs()
