"""The ``filter`` grammar (a Chroma ``where`` clause) as JSON Schema: it validates and documents.

Every query's filter is checked against this schema before Chroma sees it (``rag_model.query``),
and the server's ``/openapi.json`` publishes the same schema, so a client (or a fuzzer) that
follows the document never reaches Chroma's own checks, whose failures are not all
``ValueError`` (some come from its Rust core).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

COMPARISONS = ("$eq", "$ne")
ORDERINGS = ("$gt", "$gte", "$lt", "$lte")
MEMBERSHIPS = ("$in", "$nin")
CONTAINMENTS = ("$contains", "$not_contains")
MAX_DEPTH = 3  # levels of clauses: {"$and": [{"$or": [{field}, ...]}, ...]} is 3
EXAMPLE = '{"title": "Oxygen"} or {"$and": [{"title": "Oxygen"}, {"paragraph": {"$lt": 5}}]}'
HOW = (
    "write {field: value}, {field: {operator: value}} with one of "
    + ", ".join(COMPARISONS + ORDERINGS + MEMBERSHIPS + CONTAINMENTS)
    + ', or {"$and" or "$or": [two or more clauses]}'
)


def filter_schemas(ref: str) -> dict[str, Any]:
    """The named schemas of the grammar; ``ref`` prefixes references (``#/$defs/``...).

    Filter (the top level) is ``{}`` (no filter) or a Where: one metadata field compared with
    a value or one operator, or ``$and`` / ``$or`` over two or more Where clauses (of the
    next level: Where1 holds Where2 ... Where{MAX_DEPTH} holds fields only).
    """
    scalar = {"type": ["string", "number", "boolean"]}
    number = {"type": "number"}
    # Chroma wants every member of a list to have the same Python type
    same_type_list = {
        "anyOf": [
            {"type": "array", "minItems": 1, "items": {"type": "string"}},
            {"type": "array", "minItems": 1, "items": {"type": "number"}},  # normalised below
            {"type": "array", "minItems": 1, "items": {"type": "boolean"}},
        ]
    }
    operator = {
        "type": "object",
        "description": "exactly one operator",
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": False,
        "properties": {
            **{name: scalar for name in COMPARISONS + CONTAINMENTS},
            **{name: number for name in ORDERINGS},
            **{name: same_type_list for name in MEMBERSHIPS},
        },
    }
    field = {
        "type": "object",
        "description": "one metadata field (not starting with $ or #): a value or an operator",
        "minProperties": 1,
        "maxProperties": 1,
        "propertyNames": {"pattern": "^[^$#]"},
        "additionalProperties": {"anyOf": [scalar, {"$ref": f"{ref}FilterOperator"}]},
    }

    def logical(name: str, inner: str) -> dict[str, Any]:
        return {
            "type": "object",
            "required": [name],
            "additionalProperties": False,
            "properties": {
                name: {"type": "array", "minItems": 2, "items": {"$ref": f"{ref}{inner}"}}
            },
        }

    # $and / $or nest at most MAX_DEPTH levels: a fixed grammar, not a recursive one, bounds
    # the work per filter and keeps the document finite for generators
    levels = {
        f"Where{depth}": {
            "anyOf": [
                field,
                logical("$and", f"Where{depth + 1}"),
                logical("$or", f"Where{depth + 1}"),
            ]
        }
        for depth in range(1, MAX_DEPTH)
    }
    levels[f"Where{MAX_DEPTH}"] = field
    return {
        "Filter": {
            "description": (
                f"metadata filter (a Chroma where clause), e.g. {EXAMPLE}; {{}}: none. "
                f"$and and $or nest at most {MAX_DEPTH - 1} deep"
            ),
            "anyOf": [{"type": "object", "maxProperties": 0}, {"$ref": f"{ref}Where1"}],
        },
        **levels,
        "FilterOperator": operator,
    }


_VALIDATOR = Draft202012Validator(
    {"$ref": "#/$defs/Filter", "$defs": filter_schemas("#/$defs/")},
    format_checker=None,
)


class FilterError(ValueError):
    """A filter that does not follow the grammar; the message says where and why."""


def check_filter(value: Any) -> dict[str, Any]:
    """``value`` if it is a valid filter (number lists normalised for Chroma), else FilterError.

    Raises:
        FilterError: naming the first part of the clause that is wrong.
    """
    error = best_match(_VALIDATOR.iter_errors(value))
    if error is not None:
        where = "".join(f"[{part!r}]" for part in error.absolute_path)
        problem = error.message if len(error.message) <= 200 else error.message[:200] + "..."
        raise FilterError(f"filter{where} is not a valid where clause: {problem}; {HOW}")
    return _normalise(value)


def _normalise(value: Any) -> Any:
    """Mixed int and float lists (valid JSON numbers) become floats: Chroma wants one type."""
    if isinstance(value, Mapping):
        return {key: _normalise(item) for key, item in value.items()}
    if isinstance(value, list):
        items = [_normalise(item) for item in value]
        kinds = {type(item) for item in items}
        if kinds == {int, float}:
            return [float(item) for item in items]
        return items
    return value
