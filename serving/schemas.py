"""Request bodies, validated by pydantic; the same models describe the API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from serving.errors import ApiError


class QueryRequest(BaseModel):
    """``POST /v1/query``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    question: str
    k: int | None = None
    filter: dict[str, Any] | None = None
    include_sources: bool = True


class InvocationParams(BaseModel):
    """The ``params`` of ``POST /invocations`` (the model signature's inference params)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    k: int | None = None
    filter: str | dict[str, Any] | None = None
    include_sources: bool = True


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
