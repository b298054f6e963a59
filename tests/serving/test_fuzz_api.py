"""Schemathesis against a real gunicorn server (2 workers, fake model) and its /openapi.json.

Every operation gets schemathesis' coverage cases (boundaries of every documented bound) and
hypothesis-generated requests, valid and invalid, each checked by all of schemathesis'
default checks: no 5xx, documented status codes and content types, responses matching their
schemas, documented-valid requests accepted and documented-invalid ones refused. A few nasty
requests that behave differently through a real socket than through Flask's test client
follow.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
import requests
import schemathesis

from serving.openapi import build_spec
from serving.settings import Settings
from tests.conftest import RegisteredModel, Server, serving_production

pytestmark = pytest.mark.slow

# smaller than the defaults, so the longest documented-valid requests stay quick to answer
LIMITS = {"RAG_MAX_QUESTION_CHARS": "300", "RAG_MAX_K": "10", "RAG_MAX_BATCH": "8"}
SPEC = build_spec(Settings.from_env(LIMITS), False, ["rag-model", "rag-model@production"])
# explicit, so no schemathesis.toml from the working directory changes what runs
CONFIG = schemathesis.Config.from_str(
    """
    seed = 20261121

    [generation]
    max-examples = 25
    deterministic = true
    database = "none"
    """
)
schema = schemathesis.openapi.from_dict(SPEC, config=CONFIG)


@pytest.fixture(scope="module")
def server(
    fake_registered_model: RegisteredModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with serving_production(
        fake_registered_model, tmp_path_factory.mktemp("fuzz"), **LIMITS
    ) as running:
        yield running


def test_the_fuzzed_document_is_the_one_the_server_serves(server: Server) -> None:
    assert requests.get(f"{server.url}/openapi.json", timeout=10).json() == SPEC


@schema.parametrize()
def test_every_operation_conforms_to_the_document(case: schemathesis.Case, server: Server) -> None:
    case.call_and_validate(base_url=server.url)


def raw_request(server: Server, head: bytes, body: bytes = b"", chunked: bool = False) -> tuple:
    """Send bytes as they are (no client library tidies them); (status, headers, JSON body)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + b"\r\nHost: x\r\nConnection: close\r\n")
        if chunked:
            sock.sendall(b"Transfer-Encoding: chunked\r\n\r\n")
            for start in range(0, len(body), 65536):
                piece = body[start : start + 65536]
                try:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                except OSError:  # the server answered and closed before reading it all
                    break
            else:
                sock.sendall(b"0\r\n\r\n")
        else:
            sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    header_block, _, payload = reply.partition(b"\r\n\r\n")
    status_line, *header_lines = header_block.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, json.loads(payload)


JSON_POST = b"POST /v1/query HTTP/1.1\r\nContent-Type: application/json"
BIG = json.dumps({"question": "x" * 2_000_000}).encode()

# (head, body, chunked, status, code): what only a real socket and gunicorn's parser show
SOCKET_ROWS = {
    "body-over-the-limit": (JSON_POST, BIG, False, 413, "payload_too_large"),
    "chunked-body-over-the-limit": (JSON_POST, BIG, True, 413, "payload_too_large"),
    "chunked-body-within-the-limit": (
        JSON_POST,
        b'{"question": "What is oxygen?"}',
        True,
        200,
        None,
    ),
    "invalid-utf8-body": (JSON_POST, b'{"question": "\xff\xfe"}', False, 400, "invalid_json"),
    "invalid-utf8-in-the-path": (b"GET /v1/\xff\xfe HTTP/1.1", b"", False, 404, "not_found"),
    "invalid-utf8-in-content-type": (
        b"POST /v1/query HTTP/1.1\r\nContent-Type: application/json\xff",
        b'{"question": "q"}',
        False,
        415,
        "unsupported_media_type",
    ),
    "unknown-method": (b"BREW /v1/query HTTP/1.1", b"", False, 405, "method_not_allowed"),
    # refused by gunicorn before the app: JSON all the same (serving/gunicorn_errors.py)
    "request-line-too-large": (
        b"GET /v1/" + b"a" * 5000 + b" HTTP/1.1",
        b"",
        False,
        400,
        "request_line_too_large",
    ),
    "header-too-large": (
        b"GET /health HTTP/1.1\r\nX-Big: " + b"b" * 9000,
        b"",
        False,
        431,
        "headers_too_large",
    ),
    "too-many-headers": (
        b"GET /health HTTP/1.1" + b"".join(b"\r\nX-H%d: 1" % i for i in range(120)),
        b"",
        False,
        431,
        "headers_too_large",
    ),
}


@pytest.mark.parametrize(
    ("head", "body", "chunked", "status", "code"), SOCKET_ROWS.values(), ids=SOCKET_ROWS.keys()
)
def test_nasty_bytes_through_a_real_socket(
    server: Server, head: bytes, body: bytes, chunked: bool, status: int, code: str | None
) -> None:
    got, headers, reply = raw_request(server, head, body, chunked)
    assert (got, reply.get("error", {}).get("code")) == (status, code), reply
    assert headers["Content-Type"] == "application/json"


def test_raw_bytes_in_a_request_id_are_not_echoed(server: Server) -> None:
    head = b"GET /health HTTP/1.1\r\nX-Request-ID: abc\xff\xfe"
    status, headers, _ = raw_request(server, head)
    assert status == 200
    assert len(headers["X-Request-ID"]) == 32  # a fresh id, not the client's bytes


def test_no_request_left_a_traceback(server: Server) -> None:
    log = server.log.read_text()
    assert "Traceback" not in log, log[log.index("Traceback") - 2000 :][:6000]
