"""Served traces on a real gunicorn server exporting to a real ``mlflow server``.

One module-scoped pair of servers (fake-embedder version: no torch): a traced request's span
tree, tags and LoggedModel link; feedback on it; then the tracking server killed under load.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from mlflow import MlflowClient

from rag_model.build import build_snapshot
from rag_model.config import RagConfig
from rag_model.packaging.log import log_rag_model
from rag_model.packaging.registry import PRODUCTION, register_version, set_alias
from tests.chromium import HEADLESS_CHROMIUM
from tests.conftest import ANSWER_SPANS, FAKE_CONFIG, SAMPLE_CORPUS, Server, free_port, span_tree
from tests.ram import database_dir
from tests.serving.live import Load, wait_for
from tests.tracking_services import MlflowServer

pytestmark = pytest.mark.slow

NAME = "traced"
HYBRID = {**FAKE_CONFIG, "retrieval": {"mode": "hybrid", "k": 3}}


class Stack:
    def __init__(self, tracking: MlflowServer, server: Server, model_id: str, version: str):
        self.tracking, self.server = tracking, server
        self.model_id, self.version = model_id, version

    def client(self) -> MlflowClient:
        return MlflowClient(self.tracking.url)

    def trace_of(self, request_id: str, timeout: float = 60) -> Any:
        """The trace whose client_request_id is ``request_id`` (export is asynchronous)."""
        found: list[Any] = []

        def exported() -> bool:
            found[:] = self.client().search_traces(
                locations=[self.experiment_id()],
                filter_string=f"trace.client_request_id = '{request_id}'",
            )
            return bool(found)

        wait_for(exported, timeout)
        return found[0]

    def experiment_id(self) -> str:
        return self.client().get_experiment_by_name(NAME).experiment_id


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    import mlflow

    root = tmp_path_factory.mktemp("tracing")
    store = f"sqlite:///{database_dir(root) / 'backend.db'}"
    tracking = MlflowServer(root, store, str(root / "art"))
    tracking.start()
    server = None
    try:
        mlflow.set_tracking_uri(tracking.url)
        mlflow.set_registry_uri(tracking.url)
        mlflow.set_experiment(NAME)
        config = RagConfig.from_dict(HYBRID)
        built = build_snapshot(config, SAMPLE_CORPUS, root / "snapshot")
        with mlflow.start_run():
            info = log_rag_model(config, built.snapshot_dir)
        version = register_version(info.model_uri, NAME).version
        set_alias(NAME, PRODUCTION, version)
        server = Server(
            {
                "MLFLOW_TRACKING_URI": tracking.url,
                "RAG_MODEL_URI": f"models:/{NAME}@production",
                "RAG_TRACE_SAMPLE_RATIO": "1.0",
                # an export to the killed server fails at once rather than after retries
                "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                "RAG_TEST_LOG": str(root / "gunicorn.log"),
            },
            workers=1,  # feedback's memory of untraced requests is per worker
        )
        server.wait_ready()
        yield Stack(tracking, server, info.model_id, version)
    finally:
        if server is not None:
            server.stop()
        tracking.stop()
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]


def ask(stack: Stack, request_id: str, question: str = "What is oxygen?") -> requests.Response:
    response = requests.post(
        f"{stack.server.url}/v1/query",
        json={"question": question, "k": 2},
        headers={"X-Request-ID": request_id},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response


def test_a_served_request_is_one_trace_with_the_span_tree_tags_and_model(stack: Stack) -> None:
    ask(stack, "trace-tree-0", "Who discovered oxygen?")  # the worker's first trace sets up MLflow
    answer = ask(stack, "trace-tree-1").json()
    trace = stack.trace_of("trace-tree-1")

    print(
        "\n"
        + "\n".join(
            f"{s.name:22} {s.span_type:10} {(s.end_time_ns - s.start_time_ns) / 1e6:8.2f} ms"
            for s in trace.data.spans
        )
    )
    assert span_tree(trace) == ANSWER_SPANS
    tags = trace.info.tags
    assert {key: tags[key] for key in ("rag.source", "rag.model_name", "rag.model_version")} == {
        "rag.source": "serving",
        "rag.model_name": NAME,
        "rag.model_version": stack.version,
    }
    assert tags["rag.alias"] == "production" and tags["rag.run_id"] and tags["rag.instance"]
    assert trace.info.client_request_id == "trace-tree-1"
    root = trace.data.spans[0]
    assert root.inputs == {"question": "What is oxygen?", "k": 2, "filter": None}
    assert root.outputs["answer"] == answer["answer"]
    assert root.attributes["cache_hit"] is False
    retrieved = next(s for s in trace.data.spans if s.name == "rag.retrieve").outputs
    assert [d["id"] for d in retrieved] == [s["id"] for s in answer["sources"]]
    assert retrieved[0]["page_content"] == answer["sources"][0]["text"]
    assert retrieved[0]["metadata"]["doc_uri"] == answer["sources"][0]["document_id"]
    assert retrieved[0]["metadata"]["fused"] == answer["sources"][0]["scores"]["fused"]
    assert retrieved[0]["metadata"]["chunk_id"] == answer["sources"][0]["id"]
    by_model = stack.client().search_traces(
        locations=[stack.experiment_id()], model_id=stack.model_id
    )
    assert trace.info.trace_id in {t.info.trace_id for t in by_model}

    ask(stack, "trace-tree-2")  # the same question: from the answer cache, said so
    cached = stack.trace_of("trace-tree-2")
    assert span_tree(cached) == [("rag.answer", "CHAIN", None)]
    assert cached.data.spans[0].attributes["cache_hit"] is True


def test_a_streamed_chat_answer_is_traced_until_its_stream_ends(stack: Stack) -> None:
    body = {
        "model": NAME,
        "messages": [{"role": "user", "content": "Who discovered oxygen?"}],
        "stream": True,
    }
    response = requests.post(
        f"{stack.server.url}/v1/chat/completions",
        json=body,
        headers={"X-Request-ID": "trace-chat-1"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    events = [line[6:] for line in response.text.split("\n\n") if line]
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1])

    trace = stack.trace_of("trace-chat-1")
    assert [s.name for s in trace.data.spans] == [
        "rag.answer",
        "rag.embed_query",
        "rag.retrieve",
        "rag.retrieve.dense",
        "rag.retrieve.lexical",
        "rag.retrieve.fuse",
        "rag.generate",
    ]
    root = trace.data.spans[0]
    assert root.outputs["answer"] == text and root.attributes["stream"] is True
    assert trace.info.tags["rag.route"] == "/v1/chat/completions"


def feedback(stack: Stack, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{stack.server.url}/v1/feedback", json=body, timeout=60)


def test_feedback_lands_on_the_trace_of_the_request(stack: Stack) -> None:
    ask(stack, "trace-feedback-1", "Who built the bridge?")
    trace_id = stack.trace_of("trace-feedback-1").info.trace_id

    response = feedback(stack, {"request_id": "trace-feedback-1", "value": 4, "comment": "ok"})

    assert response.status_code == 202, response.text
    assert response.json()["trace_id"] == trace_id
    assessments = stack.client().get_trace(trace_id).info.assessments
    recorded = next(a for a in assessments if a.name == "user_feedback")
    assert recorded.value == 4 and recorded.rationale == "ok"
    assert recorded.source.source_type == "HUMAN" and recorded.source.source_id == "anonymous"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"request_id": "never-sent", "value": True}, 404, "no trace with request id never-sent"),
        ({"request_id": "x", "value": 6}, 422, "value"),
        ({"request_id": "x", "value": "yes"}, 422, "value"),
        ({"request_id": "x y", "value": True}, 422, "request_id"),
    ],
)
def test_feedback_refusals(stack: Stack, body: dict, status: int, message: str) -> None:
    response = feedback(stack, body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]


def ui_text_after_clicking(url: str, label: str, expected: str, profile: Path) -> str:
    """The page's text (spaces collapsed) once ``expected`` shows, after clicking ``label``.

    Headless Chromium driven over the DevTools protocol (MLflow's UI is a React app: the span
    must be clicked, and the text is only in the DOM after that).
    """
    from websockets.sync.client import connect

    port = free_port()
    chromium = subprocess.Popen(
        [
            *HEADLESS_CHROMIUM,
            f"--user-data-dir={profile}",
            f"--remote-debugging-port={port}",
            "--window-size=1600,1200",
            url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90
    try:
        page: dict[str, Any] = {}

        def page_listed() -> bool:
            try:
                listed = requests.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
            except requests.RequestException:
                return False
            page.update(next((p for p in listed if p["type"] == "page"), {}))
            return bool(page)

        wait_for(page_listed, 60)
        with connect(page["webSocketDebuggerUrl"], max_size=None) as socket_:
            calls = iter(range(1, 1_000_000))

            def evaluate(expression: str) -> Any:
                call = next(calls)
                params = {"expression": expression, "returnByValue": True}
                socket_.send(
                    json.dumps({"id": call, "method": "Runtime.evaluate", "params": params})
                )
                while True:
                    message = json.loads(socket_.recv())
                    if message.get("id") == call:
                        return message["result"]["result"].get("value")

            click = (
                "(() => { const node = [...document.querySelectorAll('span,div,button')].find("
                f"e => e.children.length === 0 && e.textContent.trim() === {json.dumps(label)});"
                " if (!node) return false; node.click(); return true; })()"
            )
            while not evaluate(click) and time.monotonic() < deadline:
                time.sleep(0.5)
            text = " ".join(evaluate("document.body.innerText").split())
            while expected not in text and time.monotonic() < deadline:
                time.sleep(0.5)
                text = " ".join(evaluate("document.body.innerText").split())
            return text
    finally:
        chromium.kill()
        chromium.wait()


@pytest.mark.skipif(
    not shutil.which("chromium"), reason="needs Debian's chromium (.ci/run installs it)"
)
def test_the_mlflow_ui_shows_the_retrieved_chunks_of_a_served_request(
    stack: Stack, tmp_path: Path
) -> None:
    answer = ask(stack, "trace-ui-1", "How is oxygen stored?").json()
    trace = stack.trace_of("trace-ui-1")
    url = (
        f"{stack.tracking.url}/#/experiments/{stack.experiment_id()}/traces"
        f"?selectedEvaluationId={trace.info.trace_id}"
    )
    last = answer["sources"][-1]  # a chunk the answer need not quote
    shown = " ".join(last["text"].split()[:12])

    text = ui_text_after_clicking(url, "rag.retrieve", shown, tmp_path / "profile")

    assert shown in text, text[-3000:]
    assert last["document_id"] in text


def metric(server: Server, name: str, labels: str = "") -> float:
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def test_a_dead_tracking_server_fails_no_request_and_lost_traces_are_counted(
    stack: Stack,
) -> None:
    ok_before = metric(stack.server, "rag_trace_exports_total", 'outcome="ok"')
    load = Load(stack.server.url, clients=4)
    try:
        wait_for(lambda: len(load.outcomes) >= 20)
        stack.tracking.kill()
        killed_at = len(load.outcomes)

        def lost() -> float:
            exports = "rag_trace_exports_total"
            failed = metric(stack.server, exports, 'outcome="failed"')
            return failed + metric(stack.server, exports, 'outcome="dropped"')

        wait_for(lambda: lost() >= 1 and len(load.outcomes) >= killed_at + 50, timeout=120)
        served_while_down = len(load.outcomes) - killed_at
        counted = lost()
    finally:
        load.stop()
        stack.tracking.start()  # back, so the queued exports drain before the worker exits
    print(
        f"\ntracking server killed: {served_while_down} requests served meanwhile, "
        f"{len(load.failures())} failed; traces lost {counted:g}, exported before {ok_before:g}"
    )
    assert load.failures() == []
    assert counted >= 1 and ok_before >= 1
