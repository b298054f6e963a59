"""Request and response bodies as pydantic models: they validate requests and describe the API.

``/openapi.json`` is generated from these same models, so the documentation cannot drift from
what the server accepts and returns.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serving.errors import ApiError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class QueryRequest(_Strict):
    """``POST /v1/query``."""

    question: str = Field(description="the question; not empty, at most RAG_MAX_QUESTION_CHARS")
    k: int | None = Field(None, description="chunks to retrieve (default: the model's k)")
    filter: dict[str, Any] | None = Field(None, description='Chroma where clause: {"title": "X"}')
    include_sources: bool = True


class BatchQueryRequest(_Strict):
    """``POST /v1/query/batch``: several questions with the same options."""

    questions: list[str] = Field(min_length=1, description="at most RAG_MAX_BATCH questions")
    k: int | None = None
    filter: dict[str, Any] | None = None
    include_sources: bool = True


class InvocationParams(_Strict):
    """The ``params`` of ``POST /invocations`` (the model signature's inference params)."""

    k: int | None = None
    filter: str | dict[str, Any] | None = None
    include_sources: bool = True


class InvocationsRequest(BaseModel):
    """MLflow's scoring protocol: exactly one of the four data keys, plus optional params."""

    model_config = ConfigDict(extra="forbid")

    dataframe_split: dict[str, Any] | None = None
    dataframe_records: list[dict[str, Any]] | None = None
    inputs: Any = None
    instances: Any = None
    params: InvocationParams | None = None


class Source(BaseModel):
    id: str
    document_id: str
    text: str
    score: float
    scores: dict[str, float] = Field(
        default_factory=dict, description="per retriever: dense, lexical, fused"
    )
    metadata: dict[str, Any]


class ModelRef(BaseModel):
    name: str | None
    version: str | None
    run_id: str | None


class QueryResult(BaseModel):
    answer: str
    confidence: float | None = Field(None, description="extractive: best sentence similarity")
    citations: list[str] = Field(description="ids of the cited sources; [n] is sources[n-1]")
    sources: list[Source] | None = None
    timings: dict[str, float]


class QueryResponse(QueryResult):
    model: ModelRef
    cached: bool | None = Field(None, description="true when answered from the answer cache")


class BatchQueryResponse(BaseModel):
    results: list[QueryResult]
    model: ModelRef


class InvocationsResponse(BaseModel):
    predictions: list[dict[str, Any]]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions`` in the OpenAI shape; the last user message is the question.

    OpenAI's other options (temperature, max_tokens ...) are accepted and ignored: the
    generator's settings travel inside the model. ``k`` and ``filter`` are rag-model extras.
    """

    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    n: int = Field(1, ge=1, le=1)
    k: int | None = None
    filter: dict[str, Any] | None = None


class ChatChoice(BaseModel):
    index: int
    message: dict[str, str]
    finish_reason: str


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: dict[str, int]
    sources: list[Source] = Field(description="rag-model extra: the retrieved chunks")


class ModelInfo(BaseModel):
    name: str | None
    version: str | None
    alias: str | None
    run_id: str | None
    uri: str
    loaded_at: str


class ReadyResponse(BaseModel):
    status: Literal["ready"]
    model: ModelInfo
    details: dict[str, Any]


class HealthResponse(BaseModel):
    status: Literal["ok"]


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


def validate(model: type[BaseModel], data: Any, where: str = "") -> Any:
    """Validate ``data`` against ``model``; the first problem becomes a 422 naming the field."""
    if not isinstance(data, dict):
        raise ApiError(
            f"{where or 'request body'} must be a JSON object",
            422,
            "invalid_request",
            where or None,
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or None
        if where and field:
            field = f"{where}.{field}"
        message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
        raise ApiError(f"{field}: {message}", 422, "invalid_request", field) from None
