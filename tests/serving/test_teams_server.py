"""One real gunicorn server (2 workers, fake models) for teams: scoped keys and a shadow version.

Key A's crafted filters on every route, schemathesis under key A (every source in A's scope),
a keys file changed while serving, ``GET /v1/models`` through the OpenAI SDK; then the shadow
version (``models:/rag-model@candidate``, every live question sampled): pairs recorded and
reported, the live answers unchanged while the shadow is slow (an LLM that sleeps 10 s) or
failing (an LLM that cannot be reached), and the promotion gate on shadow agreement.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis

from rag_model.config import RagConfig
from rag_model.packaging.registry import set_alias
from serving.openapi import build_spec
from serving.settings import Settings
from tests.conftest import (
    FAKE_CONFIG,
    SAMPLE_CORPUS,
    Server,
    invoke_cli,
    register_model,
)
from tests.rag_model.test_llm import KEY, FakeLLM
from tests.serving.live import wait_for
from tests.serving.scope_cases import (
    A_TITLES,
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
def llm() -> Iterator[FakeLLM]:
    server = FakeLLM()
    yield server
    server.server.shutdown()


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory, llm: FakeLLM) -> Iterator[dict[str, str]]:
    """v1 @production, v2 @candidate (other chunking), v3 slow and v4 failing (LLM generators)."""
    import mlflow

    previous = os.environ.get("MLFLOW_TRACKING_URI"), mlflow.get_tracking_uri()
    root = tmp_path_factory.mktemp("teams-store")
    model = register_model(root, RagConfig.from_dict(FAKE_CONFIG))
    llm_generation = {"generator": "openai", "api_key_env": "TEST_LLM_KEY", "max_retries": 0}
    configs = {
        "good": {"chunking": {"chunk_size": 500}},
        # loads at once, then takes 10 s per live question
        "slow": {
            "generation": {**llm_generation, "model": "slow-after-warm-up", "base_url": llm.url}
        },
        # loads (its warm-up is answered), then every live question fails with a 500
        "failing": {
            "generation": {**llm_generation, "model": "fails-after-warm-up", "base_url": llm.url}
        },
    }
    found = {"uri": model.tracking_uri, "production": model.version}
    for label, overrides in configs.items():
        found[label] = log_config(root, {**FAKE_CONFIG, **overrides}, label)
    set_alias("rag-model", "candidate", found["good"])
    yield found
    os.environ["MLFLOW_TRACKING_URI"] = previous[0] or ""
    mlflow.set_tracking_uri(previous[1])


def log_config(root: Path, data: dict[str, Any], label: str) -> str:
    import mlflow

    from rag_model.build import build_snapshot
    from rag_model.packaging.log import log_rag_model
    from rag_model.packaging.registry import register_version

    config = RagConfig.from_dict(data)
    built = build_snapshot(config, SAMPLE_CORPUS, root / f"snapshot-{label}")
    with mlflow.start_run():
        info = log_rag_model(config, built.snapshot_dir)
    return register_version(info.model_uri, "rag-model").version


@pytest.fixture(scope="module")
def server(
    versions: dict[str, str], tmp_path_factory: pytest.TempPathFactory, keys_file: Path
) -> Iterator[Server]:
    running = Server(
        {
            "MLFLOW_TRACKING_URI": versions["uri"],
            "RAG_MODEL_URI": "models:/rag-model@production",
            "RAG_TEST_LOG": str(tmp_path_factory.mktemp("teams") / "server.log"),
            "RAG_API_KEYS_FILE": str(keys_file),
            "RAG_SHADOW_URI": "models:/rag-model@candidate",
            "RAG_SHADOW_SAMPLE": "1.0",
            "RAG_SHADOW_QUEUE_SIZE": "2",
            "RAG_SHADOW_FLUSH_SECONDS": "1",
            "RAG_POLL_SECONDS": "1",
            "RAG_ANSWER_CACHE_SIZE": "0",  # every live answer is computed
            "TEST_LLM_KEY": KEY,
            **LIMITS,
        }
    )
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


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


def shadow_counts(server: Server) -> dict[str, float]:
    response = requests.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {KEY_OPS}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    text = response.text
    found = dict.fromkeys(("queued", "dropped", "answered", "failed", "unavailable"), 0.0)
    for outcome, value in re.findall(r'rag_shadow_jobs_total\{outcome="(\w+)"\} ([0-9.e+]+)', text):
        found[outcome] = float(value)
    recorded = re.search(r"rag_shadow_pairs_recorded_total ([0-9.e+]+)", text)
    found["recorded"] = float(recorded.group(1)) if recorded else 0.0
    return found


def shadow_pairs(versions: dict[str, str]) -> list[dict[str, Any]]:
    from mlflow import MlflowClient

    from rag_model.packaging.shadow_runs import read_pairs

    return read_pairs(MlflowClient(versions["uri"]), "rag-model")


def test_shadow_pairs_are_recorded_in_scope_and_reported(
    server: Server, versions: dict[str, str]
) -> None:
    send = post(server)
    for number in range(6):  # distinct questions: no answer-cache hits
        status, _ = send(
            "/v1/query", {"question": f"Who ruled Normandy in {1000 + number}?"}, KEY_A
        )
        assert status == 200
    wait_for(lambda: len(shadow_pairs(versions)) >= 6, timeout=60)
    pairs = shadow_pairs(versions)
    assert {(p["live_version"], p["shadow_version"]) for p in pairs} == {
        (versions["production"], versions["good"])
    }
    of_a = [pair for pair in pairs if pair["key"] == "team-a"]
    assert len(of_a) >= 6
    for pair in of_a:  # the shadow answered within A's scope too
        assert {d.rsplit("-", 1)[0] for d in pair["shadow_documents"]} <= A_TITLES
        assert "question" not in pair and len(pair["question_sha256"]) == 64
        assert 0 <= pair["jaccard"] <= 1 and pair["live_ms"] > 0 and pair["shadow_ms"] > 0
    result = invoke_cli("shadow-report", "--model-name", "rag-model", "--json")
    (row,) = [json.loads(line) for line in result.output.splitlines()]
    assert (row["live_version"], row["shadow_version"]) == (
        versions["production"],
        versions["good"],
    )
    assert row["pairs"] >= len(pairs)  # later flushes may have added some
    table = invoke_cli("shadow-report").output
    assert "top-1 agree" in table.splitlines()[0]
    # the shadow version's evaluation report shows the same pairs (one lookup of the store)
    from mlflow import MlflowClient

    from evaluation.report.markdown import render_markdown
    from experiments.version_report import shadow_comparison
    from tests.evaluation.report.fixtures import sample_report

    shadow, note = shadow_comparison("rag-model", versions["good"], MlflowClient(versions["uri"]))
    assert shadow is not None and note == ""
    assert shadow.live_version == versions["production"] and shadow.pairs >= row["pairs"]
    markdown = render_markdown(dataclasses.replace(sample_report(), shadow=shadow))
    assert f"Against production (v{versions['production']})" in markdown
    assert f"| pairs | {shadow.pairs} |" in markdown


def move_candidate(server: Server, version: str) -> None:
    set_alias("rag-model", "candidate", version)
    # each worker's shadow watcher logs the swap (production does not move)
    wait_for(lambda: server.logs().count(f"now serving version {version} ") >= 2, timeout=60)


@pytest.mark.parametrize("kind", ["slow", "failing"])
def test_live_answers_do_not_wait_for_a_slow_or_failing_shadow(
    server: Server, versions: dict[str, str], kind: str
) -> None:
    send = post(server)
    question = {"question": "What is the Black Death?", "k": 3}
    _, before = send("/v1/query", question, KEY_B)
    move_candidate(server, versions[kind])
    counts = shadow_counts(server)
    answers = []
    for number in range(8):
        status, body = send("/v1/query", {"question": f"What is oxygen, part {number}?"}, KEY_A)
        assert status == 200, body
        answers.append(body)
    after = shadow_counts(server)
    if kind == "slow":  # 10 s per shadow answer: the live answers did not wait for them
        assert after["answered"] - counts["answered"] < 8
        assert after["dropped"] > counts["dropped"], (counts, after)  # 2 queued per worker
    else:
        wait_for(lambda: shadow_counts(server)["failed"] > counts["failed"], timeout=30)
        assert f"shadow version {versions['failing']} failed" in server.logs()
    # the live version's answers are what they were
    assert (
        send("/v1/query", {**question, "question": question["question"] + " "}, KEY_B)[1]["answer"]
        == before["answer"]
    )
    assert "Traceback" not in server.logs()


def test_promotion_can_require_shadow_agreement(server: Server, versions: dict[str, str]) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(versions["uri"])
    for version in (versions["production"], versions["good"], versions["failing"]):
        client.set_model_version_tag("rag-model", version, "eval.dataset_digest", "d1")
        client.set_model_version_tag("rag-model", version, "eval.hit_rate", "0.8")
    refused = invoke_cli(
        "promote", "--version", versions["failing"], "--min-shadow-agreement", "0.5"
    )
    assert refused.exit_code == 3
    assert f"version {versions['failing']} has no shadow pairs against production" in (
        refused.output
    )
    (row,) = [
        json.loads(line)
        for line in invoke_cli("shadow-report", "--json").output.splitlines()
        if json.loads(line)["shadow_version"] == versions["good"]
    ]
    agreement = row["top1_agreement"]
    promoted = invoke_cli(
        "promote", "--version", versions["good"], "--min-shadow-agreement", str(agreement)
    )
    assert promoted.exit_code == 0, promoted.output
    assert f"shadow top-1 agreement {agreement:.4f} >= {agreement}" in promoted.output
