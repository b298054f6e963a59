"""``rag-model query``: ask a running server a question, as a client of its REST API.

Every refusal (server unreachable, an error answer, a body that is not JSON) is one
``Error: ...`` line naming the URL and the HTTP status, never a traceback.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click


@click.command()
@click.argument("question")
@click.option(
    "--url",
    default="http://127.0.0.1:8000",
    show_default=True,
    envvar="RAG_URL",
    help="The server's base URL (or RAG_URL).",
)
@click.option(
    "--api-key-env",
    default="",
    metavar="NAME",
    help="Send the API key that environment variable NAME holds (never on the command line).",
)
@click.option(
    "--filter",
    "where",
    default="",
    metavar="JSON",
    help='A metadata filter as a JSON object, e.g. \'{"title": "Oxygen"}\'.',
)
@click.option("--k", type=click.IntRange(min=1), default=None, help="Passages to retrieve.")
@click.option("--json", "as_json", is_flag=True, help="Print the server's JSON answer as it is.")
def query(
    question: str, url: str, api_key_env: str, where: str, k: int | None, as_json: bool
) -> None:
    """Ask a running server a QUESTION; print the answer, its sources and the served version."""
    import requests

    body: dict[str, Any] = {"question": question}
    if k is not None:
        body["k"] = k
    if where:
        body["filter"] = _filter(where)
    headers = {}
    if api_key_env:
        key = os.environ.get(api_key_env, "").strip()
        if not key:
            raise click.ClickException(
                f"--api-key-env {api_key_env}: that environment variable is not set or empty"
            )
        headers["Authorization"] = f"Bearer {key}"
    endpoint = f"{url.rstrip('/')}/v1/query"
    try:
        response = requests.post(endpoint, json=body, headers=headers, timeout=60)
    except requests.RequestException as exc:
        raise click.ClickException(f"cannot reach {url}: {type(exc).__name__}") from None
    status = f"{response.status_code} {response.reason or ''}".strip()
    try:
        data = response.json()
    except ValueError:
        kind = response.headers.get("Content-Type") or "no content type"
        raise click.ClickException(
            f"{endpoint} answered {status} with a body that is not JSON ({kind})"
        ) from None
    if response.status_code != 200 or not isinstance(data, dict):
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            detail = f"{error.get('code')}: {error.get('message')}"
        else:
            detail = json.dumps(data)[:300]
        raise click.ClickException(f"{endpoint} answered {status}: {detail}")
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    try:
        _print_answer(question, data)
    except (KeyError, TypeError, AttributeError):
        raise click.ClickException(
            f"{endpoint} answered {status} with JSON that is not a rag-model answer "
            "(use --json to see it)"
        ) from None


def _filter(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON ({exc.msg})", param_hint="--filter") from None
    if not isinstance(value, dict):
        raise click.BadParameter(
            'must be a JSON object such as {"title": "Oxygen"}', param_hint="--filter"
        )
    return value


def _print_answer(question: str, data: dict[str, Any]) -> None:
    click.echo(f"Q: {question}\nA: {data['answer']}\n\nSources:")
    for number, source in enumerate(data.get("sources", []), start=1):
        click.echo(
            f"  [{number}] {source['document_id']} (score {source['score']:.3f}): "
            f"{source['text'][:100]}…"
        )
    model = data["model"]
    click.echo(f"\nServed by {model['name']} version {model['version']} (run {model['run_id']})")
