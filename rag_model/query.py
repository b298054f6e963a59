"""The query contract: a question with its k, filter and include_sources, checked in one place.

Every way of asking a model version a question (``RagPipeline.answer``, the pyfunc ``predict``
behind ``/invocations``, ``mlflow models serve`` and ``spark_udf``, the server's routes, the
LangChain and LlamaIndex adapters, evaluation) resolves its options through ``Query.resolve``:
an absent k is the version's ``retrieval.k`` (including a load-time ``model_config``
override), k is bounded by ``MAX_K`` (a server may lower the bound with ``RAG_MAX_K``, never
raise it), and a filter, given as a mapping or as the JSON text MLflow clients send, is
parsed and checked against the one grammar in ``rag_model.filters``.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from rag_model.errors import QueryError
from rag_model.filters import FilterError, check_filter

# The one bound on k: RetrievalConfig.k, every query's k and the server's RAG_MAX_K (its
# default, and its ceiling) all derive from it.
MAX_K = 200


class CheckedFilter(dict):
    """A where clause already checked against the grammar, as ``parse_filter`` returns it.

    Checking costs 0.1-0.3 ms (jsonschema); a request passes its filter through several
    layers (the server's schema, the answer cache key, the pipeline), and each of them would
    otherwise check it again.
    """


@dataclass(frozen=True)
class Query:
    """One resolved question: stripped text, a k within bounds, a checked filter (or None).

    Example:
        >>> Query.resolve("  Who built it? ", filter='{"title": "Oxygen"}', default_k=4)
        Query(question='Who built it?', k=4, filter={'title': 'Oxygen'}, include_sources=True)
    """

    question: str
    k: int
    filter: dict[str, Any] | None = None
    include_sources: bool = True

    @classmethod
    def resolve(
        cls,
        question: Any,
        k: Any = None,
        filter: Any = None,
        include_sources: Any = True,
        *,
        default_k: int,
        max_k: int = MAX_K,
    ) -> Query:
        """Check and complete a query; ``k=None`` means ``default_k``.

        Raises:
            QueryError: naming the field: an empty question, k not an integer in
                ``1..max_k``, a filter that is not a where clause.
        """
        return cls(
            question=check_question(question),
            k=check_k(default_k if k is None else k, max_k),
            filter=parse_filter(filter),
            include_sources=True if include_sources is None else bool(include_sources),
        )

    def key(self) -> Hashable:
        """A hashable identity (answer caches); filters compare by content, not key order."""
        where = json.dumps(self.filter, sort_keys=True) if self.filter else None
        return (self.question, self.k, where, self.include_sources)


def check_question(question: Any) -> str:
    """The question without surrounding space.

    Raises:
        QueryError: ``question`` is not a string with some non-space text.
    """
    if not isinstance(question, str) or not question.strip():
        raise QueryError("question must be a non-empty string", field="question")
    return question.strip()


def check_k(k: Any, max_k: int = MAX_K, field: str = "k") -> int:
    """``k`` as an int if it is a whole number in ``1..max_k`` (numpy integers included).

    Raises:
        QueryError: naming ``field``, the bound and the value (long numbers cut).
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise QueryError(f"{field} must be an integer between 1 and {max_k}, got {k!r}", field)
    if not 1 <= k <= max_k:
        text = str(k)
        got = text if len(text) <= 20 else f"{text[:20]}... ({len(text)} digits)"
        raise QueryError(f"{field} must be between 1 and {max_k}, got {got}", field)
    return int(k)


def parse_filter(value: Any, field: str = "filter") -> dict[str, Any] | None:
    """A checked where clause from a mapping or JSON object text; ``None``, ``""``, ``{}``: none.

    Raises:
        QueryError: text that is not a JSON object, or a clause outside the filter grammar.
    """
    if value is None or value == "":
        return None
    if isinstance(value, CheckedFilter):
        return value or None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise QueryError(
                f'{field} must be a JSON object such as {{"title": "Oxygen"}}, got {value!r}',
                field,
            ) from None
    if not isinstance(value, Mapping):
        raise QueryError(
            f'{field} must be an object such as {{"title": "Oxygen"}}, got {value!r}', field
        )
    try:
        checked = check_filter(dict(value))
    except FilterError as exc:
        raise QueryError(str(exc), field) from None
    return CheckedFilter(checked) if checked else None
