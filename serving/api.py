"""The REST routes: /v1/query (+ batch), /invocations (MLflow), /health, /ready, /version."""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from rag_model import query as contract
from rag_model import tracing
from rag_model.packaging.rows import predict_rows
from rag_model.pipeline import Answer
from serving import shadow, strict_json
from serving.errors import ApiError
from serving.model_holder import ModelHolder, ServedModel
from serving.observability import ANSWER_CACHE_HITS, ANSWER_CACHE_MISSES
from serving.schemas import (
    SCORING_FORMATS,
    BatchQueryRequest,
    BatchQueryResponse,
    InvocationParams,
    InvocationsRequest,
    QueryRequest,
    QueryResult,
    validate,
)
from serving.scopes import scoped
from serving.settings import Settings
from serving.tracing import trace_cached_answer, traced_request

api = Blueprint("api", __name__)

T = TypeVar("T")


def holder() -> ModelHolder:
    """This app's model holder."""
    return current_app.extensions["rag_model"]


def settings() -> Settings:
    """This app's settings."""
    return current_app.extensions["rag_settings"]


@contextmanager
def served() -> Iterator[ServedModel]:
    """The model for this request (503 if none); held until the request is done with it."""
    with holder().serving() as model:
        if model is None:
            current = holder()
            detail = (
                f"model failed to load: {current.error}" if current.error else "model is loading"
            )
            raise ApiError(f"{detail}; retry later", 503, "not_ready")
        g.model_version = model.version
        with traced_request(model):  # sampled: the answer is an MLflow trace (serving/tracing.py)
            yield model


_executor: ThreadPoolExecutor | None = None
_executor_pid: int | None = None
_executor_lock = threading.Lock()


def with_timeout(work: Callable[[], T]) -> T:
    """Run ``work`` but answer 504 after RAG_REQUEST_TIMEOUT seconds (the work is not killed)."""
    global _executor, _executor_pid
    with _executor_lock:
        if _executor is None or _executor_pid != os.getpid():  # one pool per worker process
            _executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="request")
            _executor_pid = os.getpid()
        # in the request's context: the tracer chosen for it follows the work into the pool
        future = _executor.submit(contextvars.copy_context().run, work)
    limit = settings().request_timeout
    try:
        return future.result(timeout=limit)
    except FutureTimeout:
        raise ApiError(f"the request took longer than {limit} s", 504, "timeout") from None


def json_body() -> Any:
    """The request's strict JSON body: 415 if not JSON, 413 past the size limit, 400 if invalid."""
    if not request.is_json:
        raise ApiError(
            f"send Content-Type: application/json (got {request.content_type or 'none'})",
            415,
            "unsupported_media_type",
        )
    raw = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if limit is not None and len(raw) >= limit:
        # a chunked body (no Content-Length) is cut at the limit by werkzeug, not refused:
        # anything left after it means the body was too large
        if request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
    try:
        return strict_json.loads(raw)
    except strict_json.InvalidJson as exc:
        raise ApiError(f"body is {exc}", 400, "invalid_json") from None


def check_question(question: str, field: str = "question") -> str:
    """The stripped question, or a 422 naming ``field`` (empty, NUL characters, too long).

    The length limit counts what the client sent, as ``maxLength`` in /openapi.json does.
    """
    limit = settings().max_question_chars
    if len(question) > limit:
        raise ApiError(
            f"{field} is {len(question)} characters; the limit is {limit}",
            422,
            "invalid_request",
            field,
        )
    stripped = question.strip()
    if not stripped:
        raise ApiError(f"{field} must not be empty", 422, "invalid_request", field)
    if "\x00" in stripped:
        raise ApiError(f"{field} must not contain NUL characters", 422, "invalid_request", field)
    return stripped


def check_k(k: int | None, field: str = "k") -> int | None:
    """``k`` if within 1..RAG_MAX_K (None: the model's default), else a 422 naming ``field``."""
    return None if k is None else contract.check_k(k, settings().max_k, field)


def check_batch(count: int, field: str) -> None:
    """A 422 when a request carries more than RAG_MAX_BATCH questions (``maxItems``)."""
    limit = settings().max_batch
    if count > limit:
        raise ApiError(
            f"{count} questions; the limit is {limit} per request (RAG_MAX_BATCH)",
            422,
            "batch_too_large",
            field,
        )


def answer_questions(
    model: ServedModel, questions: list[str], k: int | None, where: dict[str, Any] | None
) -> list[Answer]:
    """Answer on ``model`` within the request timeout (the core's errors map to JSON)."""

    def work() -> list[Answer]:
        model.enter()  # the model stays loaded even if the request times out first
        try:
            if len(questions) > 1:  # one encoder call and one Chroma query for all
                return model.pipeline.answer_many(questions, k, where)
            if model.batcher is not None:  # gathered with other requests' questions
                # a sampled request's tracer goes along: the batch is answered in another thread
                tracer = tracing.current_tracer()
                content = tracing.is_content_tracing_enabled()
                return [model.batcher.submit((questions[0], k, where, tracer, content))]
            return [model.pipeline.answer(questions[0], k=k, where=where)]
        finally:
            model.exit()

    return with_timeout(work)


def model_ref(model: ServedModel) -> dict[str, Any]:
    """The model fields every answer carries."""
    return {"name": model.name, "version": model.version, "run_id": model.run_id}


@api.get("/health")
def health() -> Response:
    """Liveness: the process answers."""
    return jsonify({"status": "ok"})


@api.get("/ready")
def ready() -> Response:
    """Readiness: 200 once a model is loaded and verified, else 503; details either way."""
    details = holder().details()
    if holder().model is None:
        response = jsonify(
            {
                "error": {
                    "code": "not_ready",
                    "message": f"model failed to load: {holder().error}; retrying"
                    if holder().error
                    else "model is loading",
                },
                "details": details,
            }
        )
        response.status_code = 503
        return response
    return jsonify({"status": "ready", "model": details["model"], "details": details})


@api.get("/version")
def version() -> Response:
    """The served model's name, version, alias, run id and load time."""
    with served() as model:
        return jsonify(model.describe())


@api.post("/v1/query")
def query() -> Response:
    """``{question, k?, filter?, include_sources?}`` -> answer, sources, model, timings.

    The lean path: no DataFrame and no response model; a repeated question is answered from
    the version's answer cache.
    """
    body = validate(QueryRequest, json_body())
    question = check_question(body.question)
    k = check_k(body.k)
    where = scoped(body.filter)  # the API key's scope ANDed in: also part of the cache key
    with served() as model:
        key = model.pipeline.query(question, k, where, body.include_sources).key()
        result = model.answers.get(key) if model.answers.enabled else None
        if result is not None:
            ANSWER_CACHE_HITS.inc()
            trace_cached_answer(question, k, body.filter, result)
            return jsonify({**result, "cached": True})
        if model.answers.enabled:
            ANSWER_CACHE_MISSES.inc()
        (answer,) = answer_questions(model, [question], k, where)
        shadow.offer([answer], k, where, model)  # a sample, queued: never waits
        result = answer.to_dict(include_sources=body.include_sources)
        result["model"] = model_ref(model)
        model.answers.put(key, result)
    return jsonify(result)


@api.post("/v1/query/batch")
def query_batch() -> Response:
    """``{questions: [...], k?, filter?, include_sources?}`` -> one result per question."""
    body = validate(BatchQueryRequest, json_body())
    check_batch(len(body.questions), "questions")
    questions = [check_question(q, f"questions.{i}") for i, q in enumerate(body.questions)]
    k = check_k(body.k)
    with served() as model:
        where = scoped(body.filter)
        answers = answer_questions(model, questions, k, where)
        shadow.offer(answers, k, where, model)
        results = [QueryResult(**a.to_dict(include_sources=body.include_sources)) for a in answers]
        response = BatchQueryResponse(results=results, model=model_ref(model))
    return jsonify(response.model_dump(exclude_none=True))


@api.post("/invocations")
def invocations() -> Response:
    """MLflow's scoring protocol, so clients of ``mlflow models serve`` work unchanged."""
    body = json_body()
    if isinstance(body, dict):
        formats = [key for key in SCORING_FORMATS if key in body]
        if len(formats) != 1:
            raise ApiError(
                f"body must have exactly one of {', '.join(SCORING_FORMATS)} (plus optional "
                f"'params'); got {', '.join(formats) or 'none'}",
                422,
                "invalid_request",
            )
        if body[formats[0]] is None:
            raise ApiError(f"{formats[0]} must not be null", 422, "invalid_request", formats[0])
    request_body = validate(InvocationsRequest, body)
    data_key, fields = request_body.questions()
    check_batch(len(fields), data_key)
    questions = [check_question(question, field) for field, question in fields]
    params = request_body.params or InvocationParams()
    # the signature's params, with the filter already parsed: it is not sent back through JSON
    model_params = {
        "k": check_k(params.k, "params.k"),
        "filter": scoped(params.filter),
        "include_sources": params.include_sources,
    }
    with served() as model:

        def work() -> list[dict[str, Any]]:
            model.enter()
            try:
                return predict_rows(model.pipeline, questions, model_params)
            finally:
                model.exit()

        predictions = with_timeout(work)
    return jsonify({"predictions": predictions})
