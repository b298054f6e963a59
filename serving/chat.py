"""``POST /v1/chat/completions``: OpenAI-compatible chat over the RAG model, streaming with SSE.

The last user message is the question; ``model`` must name the served registered model. With
``stream: true`` the answer is sent as ``chat.completion.chunk`` server-sent events ending in
``data: [DONE]``, so the OpenAI SDKs work against this server unchanged.
"""

from __future__ import annotations

import calendar
import json
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, g, jsonify, stream_with_context

from rag_model.errors import GenerationError
from rag_model.followup import standalone
from serving import shadow
from serving.api import answer_questions, check_k, check_question, json_body, served
from serving.errors import ApiError
from serving.schemas import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    OtherMessage,
    TextPart,
    UserMessage,
    validate,
)
from serving.scopes import scoped
from serving.tracing import StreamTrace, stream_trace

chat = Blueprint("chat", __name__)


def _traced_pieces(trace: StreamTrace, pieces: Iterator[str]) -> Iterator[str]:
    """The generator's pieces, each made inside the request's trace."""
    while True:
        try:
            yield trace.run(next, pieces)
        except StopIteration:
            return


@chat.get("/v1/models")
def list_models() -> Response:
    """The served model in OpenAI's list shape: the names chat requests may give as ``model``."""
    with served() as model:
        name = model.name or "rag-model"
        names = [name] + [f"{name}@{model.alias}"] * bool(model.alias)
        created = calendar.timegm(time.strptime(model.loaded_at, "%Y-%m-%dT%H:%M:%SZ"))
        cards = [
            {"id": each, "object": "model", "created": created, "owned_by": "rag-model"}
            for each in names
        ]
    return jsonify({"object": "list", "data": cards})


def user_question(messages: list[UserMessage | OtherMessage]) -> str:
    """The last ``user`` message's text; every user message is checked as a question (422)."""
    return user_turns(messages)[-1]


def user_turns(messages: list[UserMessage | OtherMessage]) -> list[str]:
    """Every ``user`` message's text, in order; each is checked as a question (422).

    Content is a string or a list of parts whose text parts are joined with spaces; each
    text part is checked on its own, as /openapi.json documents.
    """
    turns: list[str] = []
    for index, message in enumerate(messages):
        if not isinstance(message, UserMessage):
            continue
        field = f"messages.{index}.content"
        if isinstance(message.content, str):
            turns.append(check_question(message.content, field))
            continue
        texts = [
            check_question(part.text, f"{field}.{position}.text")
            for position, part in enumerate(message.content)
            if isinstance(part, TextPart)
        ]
        if not texts:
            raise ApiError(f"{field} has no text part", 422, "invalid_request", field)
        turns.append(" ".join(texts))
    if not turns:
        raise ApiError("messages must contain a user message", 422, "invalid_request", "messages")
    return turns


@chat.post("/v1/chat/completions")
def chat_completions() -> Response:
    """Answer the last user message; ``stream: true`` answers with server-sent events."""
    body = validate(ChatCompletionRequest, json_body())
    turns = user_turns(body.messages)
    k = check_k(body.k)
    where = scoped(body.filter)  # the API key's scope ANDed in
    trace: StreamTrace | None = None
    with served() as model:
        if model.name and body.model not in (model.name, f"{model.name}@{model.alias}"):
            raise ApiError(
                f"model {body.model!r} is not served here; this server serves {model.name!r}",
                404,
                "model_not_found",
                "model",
            )
        name = model.name or body.model
        # a follow-up ("When did he die?") is retrieved as a standalone question: condensed
        # by an LLM generator, else the previous user turn folded in (rag_model/followup.py)
        question = standalone(turns[-1], turns[:-1], model.pipeline.generator)
        if not body.stream:
            (answer,) = answer_questions(model, [question], k, where)
            shadow.offer([answer], k, where, model)
        else:  # sampled: the trace runs on while the answer streams (serving/tracing.py)
            trace = stream_trace(question, k, where)
    completion_id = f"chatcmpl-{g.request_id}"
    created = int(time.time())
    if not body.stream:
        response = ChatCompletionResponse(
            id=completion_id,
            object="chat.completion",
            created=created,
            model=name,
            choices=[
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.answer},
                    "finish_reason": "stop",
                }
            ],
            # the LLM's counts; zeros for generators that count no tokens (extractive, echo)
            usage=answer.usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            sources=answer.to_dict()["sources"],
        )
        return jsonify(response.model_dump())

    model.enter()  # held until the stream ends, even if the alias moves meanwhile
    try:
        if trace is None:
            sources, pieces = model.pipeline.answer_stream(question, k=k, where=where)
        else:
            sources, pieces = trace.run(model.pipeline.answer_stream, question, k, where)
            trace.generating(model.pipeline.generator, sources)
    except BaseException as exc:
        model.exit()
        if trace is not None:
            trace.finish("", [], exc)
        raise
    source_rows = [source.to_dict() for source in sources]

    def events() -> Iterator[str]:
        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            data = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            }
            return f"data: {json.dumps(data)}\n\n"

        streamed: list[str] = []
        stopped: BaseException | None = None
        try:
            yield chunk({"role": "assistant", "content": ""})
            for piece in pieces if trace is None else _traced_pieces(trace, pieces):
                streamed.append(piece)
                yield chunk({"content": piece})
            yield chunk({}, "stop", sources=source_rows)
        except GenerationError as exc:  # headers are sent: report in the stream, as OpenAI does
            stopped = exc
            error = {"error": {"code": "generation_failed", "message": str(exc)}}
            yield f"data: {json.dumps(error)}\n\n"
        except BaseException as exc:  # the client went away (GeneratorExit) or worse
            stopped = exc
            raise
        finally:
            model.exit()
            if trace is not None:
                trace.finish("".join(streamed), [s["id"] for s in source_rows], stopped)
        yield "data: [DONE]\n\n"

    return Response(
        stream_with_context(events()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
