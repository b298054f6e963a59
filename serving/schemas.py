"""Request and response bodies as pydantic models: they validate requests and describe the API.

``/openapi.json`` is generated from these same models, so the documentation cannot drift from
what the server accepts and returns.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from rag_model.filters import FilterError, check_filter
from rag_model.query import CheckedFilter
from serving import strict_json
from serving.errors import ApiError

# Marks a schema node whose bounds are server settings; openapi.build_spec fills them in
# (question: RAG_MAX_QUESTION_CHARS, k: RAG_MAX_K, batch: RAG_MAX_BATCH). The routes check
# the same bounds with messages naming the setting (serving.api.check_*).
LIMIT = "x-rag-limit"
FILTER_REF = {"$ref": "#/components/schemas/Filter"}
SCORING_FORMATS = ("dataframe_split", "dataframe_records", "inputs", "instances")


def _valid_filter(value: dict[str, Any]) -> dict[str, Any]:
    try:
        return CheckedFilter(check_filter(value))  # the pipeline does not check it again
    except FilterError as exc:
        raise PydanticCustomError("invalid_filter", str(exc)) from None


def _filter_from_text(value: Any) -> Any:
    """MLflow clients send the ``filter`` param as JSON text (the signature's type is string)."""
    if not isinstance(value, str):
        return value
    if not value:
        return None
    try:
        return strict_json.loads(value)
    except strict_json.InvalidJson as exc:
        raise PydanticCustomError("invalid_filter", f"filter is {exc}") from None


def whole_number(value: Any) -> Any:
    """5.0 is an integer in JSON Schema (its value counts, not its spelling): accept it as 5."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Integer = Annotated[int, BeforeValidator(whole_number)]
Question = Annotated[str, WithJsonSchema({"type": "string", LIMIT: "question"})]
K = Annotated[Integer, WithJsonSchema({"type": "integer", LIMIT: "k"})]
Filter = Annotated[dict[str, Any], AfterValidator(_valid_filter), WithJsonSchema(FILTER_REF)]
InvocationFilter = Annotated[
    Filter | None,
    BeforeValidator(_filter_from_text),
    WithJsonSchema(
        {
            "anyOf": [FILTER_REF, {"type": "string", "maxLength": 0}, {"type": "null"}],
            "description": "a Filter; MLflow clients may send it as JSON text; '' or null: none",
        }
    ),
]


def _batch(**kwargs: Any) -> Any:
    """A list of 1 .. RAG_MAX_BATCH items."""
    return Field(min_length=1, json_schema_extra={LIMIT: "batch"}, **kwargs)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class QueryRequest(_Strict):
    """``POST /v1/query``."""

    question: Question = Field(
        description="the question: some non-space text, no NUL, at most RAG_MAX_QUESTION_CHARS"
    )
    k: K | None = Field(
        None, description="chunks to retrieve, 1 .. RAG_MAX_K (default: the model's k)"
    )
    filter: Filter | None = None
    include_sources: bool = True


class BatchQueryRequest(_Strict):
    """``POST /v1/query/batch``: several questions with the same options."""

    questions: list[Question] = _batch(description="1 .. RAG_MAX_BATCH questions")
    k: K | None = None
    filter: Filter | None = None
    include_sources: bool = True


class InvocationParams(_Strict):
    """The ``params`` of ``POST /invocations`` (the model signature's inference params)."""

    k: K | None = None
    filter: InvocationFilter = None
    include_sources: bool = True


class QuestionRecord(_Strict):
    question: Question


class QuestionColumn(_Strict):
    question: Question | Annotated[list[Question], _batch()]


class DataframeSplit(_Strict):
    columns: list[Literal["question"]] = Field(min_length=1, max_length=1)
    data: list[Annotated[list[Question], Field(min_length=1, max_length=1)]] = _batch(
        description="one row per question: [[question], ...]"
    )
    index: list[Any] | None = Field(None, description="ignored: predictions keep the row order")


def _one_format(schema: dict[str, Any]) -> None:
    # exactly one data key, never null (the model allows None only to tell "absent")
    for name in SCORING_FORMATS:
        prop = schema["properties"][name]
        prop.pop("default", None)
        prop["anyOf"] = [option for option in prop["anyOf"] if option != {"type": "null"}]
        if len(prop["anyOf"]) == 1:
            prop.update(prop.pop("anyOf")[0])
    schema["oneOf"] = [{"required": [name]} for name in SCORING_FORMATS]


class InvocationsRequest(_Strict):
    """MLflow's scoring protocol: exactly one of the four data keys, plus optional params.

    The model's only input column is ``question``; rows are answered in order.
    """

    model_config = ConfigDict(json_schema_extra=_one_format)

    dataframe_split: DataframeSplit | None = None
    dataframe_records: Annotated[list[QuestionRecord], _batch()] | None = None
    inputs: Question | Annotated[list[Question], _batch()] | QuestionColumn | None = None
    instances: (
        Annotated[list[Question], _batch()] | Annotated[list[QuestionRecord], _batch()] | None
    ) = None
    params: InvocationParams | None = None

    def questions(self) -> tuple[str, list[tuple[str, str]]]:
        """(the data key used, [(field naming the question, question)] in row order)."""
        if self.dataframe_split is not None:
            rows = self.dataframe_split.data
            return "dataframe_split", [
                (f"dataframe_split.data.{i}.0", r[0]) for i, r in enumerate(rows)
            ]
        if self.dataframe_records is not None:
            records = self.dataframe_records
            return "dataframe_records", [
                (f"dataframe_records.{i}.question", r.question) for i, r in enumerate(records)
            ]
        if self.inputs is not None:
            field, value = "inputs", self.inputs
            if isinstance(value, QuestionColumn):
                field, value = "inputs.question", value.question
            if isinstance(value, str):
                return "inputs", [(field, value)]
            return "inputs", [(f"{field}.{i}", q) for i, q in enumerate(value)]
        assert self.instances is not None
        return "instances", [
            (f"instances.{i}", item)
            if isinstance(item, str)
            else (f"instances.{i}.question", item.question)
            for i, item in enumerate(self.instances)
        ]


class Source(BaseModel):
    id: str
    document_id: str
    text: str
    score: float
    scores: dict[str, float] = Field(
        default_factory=dict,
        description="per stage: dense, lexical, fused; sentence (re-scoring), rerank",
    )
    metadata: dict[str, Any]
    best_sentence: str | None = Field(
        None, description="the sentence closest to the question (sentence re-scoring only)"
    )


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


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    type: Literal["text"]
    text: Question


class OtherPart(BaseModel):
    """A content part that is not text (an image ...): accepted and ignored."""

    model_config = ConfigDict(extra="allow", strict=True)

    type: str = Field(json_schema_extra={"not": {"const": "text"}})

    @field_validator("type")
    @classmethod
    def _not_text(cls, value: str) -> str:
        if value == "text":
            raise PydanticCustomError("text_part", "a text part needs a string 'text'")
        return value


HAS_TEXT_PART = {
    "contains": {"type": "object", "required": ["type"], "properties": {"type": {"const": "text"}}}
}


class UserMessage(BaseModel):
    """A question: every user message follows the question's rules; the last one is asked."""

    model_config = ConfigDict(extra="allow", strict=True)

    role: Literal["user"]
    content: (
        Question
        | Annotated[
            list[TextPart | OtherPart], Field(min_length=1, json_schema_extra=HAS_TEXT_PART)
        ]
    )


class OtherMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    role: Literal["system", "developer", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


ChatMessage = Annotated[UserMessage | OtherMessage, Field(discriminator="role")]
HAS_USER_MESSAGE = {
    "contains": {"type": "object", "required": ["role"], "properties": {"role": {"const": "user"}}}
}


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions`` in the OpenAI shape; the last user message is the question.

    OpenAI's other options (temperature, max_tokens ...) are accepted and ignored: the
    generator's settings travel inside the model. ``k`` and ``filter`` are rag-model extras.
    """

    model_config = ConfigDict(extra="ignore", strict=True)

    model: str
    messages: list[ChatMessage] = Field(min_length=1, json_schema_extra=HAS_USER_MESSAGE)
    stream: bool = False
    n: Integer = Field(1, ge=1, le=1)
    k: K | None = None
    filter: Filter | None = None


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


class ChunkChoice(BaseModel):
    index: int
    delta: dict[str, str]
    finish_reason: str | None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed chat completion (``stream: true``)."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    sources: list[Source] | None = Field(None, description="on the last chunk: the sources")


class ModelCard(BaseModel):
    """One model of ``GET /v1/models``, in OpenAI's shape."""

    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    """``GET /v1/models``: the served model, by name and by name@alias (OpenAI's shape)."""

    object: Literal["list"]
    data: list[ModelCard]


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
        path = _field_path(data, error["loc"], missing=error["type"] == "missing")
        field = ".".join([where] * bool(where) + path) or None
        message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
        if error["type"] == "invalid_filter":  # already names the filter's part
            raise ApiError(message, 422, "invalid_request", field) from None
        raise ApiError(f"{field}: {message}", 422, "invalid_request", field) from None


def _field_path(data: Any, loc: tuple[str | int, ...], missing: bool) -> list[str]:
    """The parts of pydantic's ``loc`` that name request fields; union member tags dropped."""
    path: list[str] = []
    for position, part in enumerate(loc):
        last = position == len(loc) - 1
        if isinstance(data, dict) and isinstance(part, str) and (part in data or missing and last):
            path.append(part)
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            path.append(str(part))
            data = data[part]
        # else: a union member ("str", "list[str]", "QuestionColumn"), not a request key
    return path
