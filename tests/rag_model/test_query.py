"""The query contract: one bound on k, one default, one filter parser (rag_model.query)."""

from __future__ import annotations

import numpy as np
import pytest

from rag_model.config import RagConfig
from rag_model.errors import ConfigError, QueryError
from rag_model.query import MAX_K, Query, check_k, parse_filter


def test_an_absent_k_is_the_default_and_the_question_is_stripped() -> None:
    query = Query.resolve("  Who built it?\n", default_k=7)

    assert query == Query(question="Who built it?", k=7, filter=None, include_sources=True)


def test_numpy_integers_from_mlflow_params_are_plain_ints() -> None:
    k = check_k(np.int64(3))

    assert k == 3 and type(k) is int


def test_a_server_may_lower_the_bound_and_the_message_names_the_field() -> None:
    with pytest.raises(QueryError, match=r"^params\.k must be between 1 and 10, got 11$") as caught:
        check_k(11, max_k=10, field="params.k")

    assert caught.value.field == "params.k"


def test_a_config_cannot_default_to_more_than_any_query_may_ask() -> None:
    RagConfig.from_dict({"retrieval": {"k": MAX_K, "fetch_k": MAX_K}})
    with pytest.raises(
        ConfigError, match=rf"retrieval\.k: Input should be less than or equal to {MAX_K}"
    ):
        RagConfig.from_dict({"retrieval": {"k": MAX_K + 1, "fetch_k": 1000}})


@pytest.mark.parametrize("empty", [None, "", {}])
def test_an_empty_filter_is_no_filter(empty: object) -> None:
    assert parse_filter(empty) is None


def test_a_filter_as_json_text_and_as_a_mapping_resolve_alike() -> None:
    text = '{"paragraph": {"$in": [1, 2.5]}}'

    assert parse_filter(text) == parse_filter({"paragraph": {"$in": [1, 2.5]}})
    assert parse_filter(text) == {"paragraph": {"$in": [1.0, 2.5]}}  # one number type for Chroma


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("title=Oxygen", "filter must be a JSON object such as"),
        ('["title"]', "filter must be an object such as"),
        ({"title": {"$regex": "O.*"}}, r"filter\['title'\] is not a valid where clause"),
    ],
)
def test_a_bad_filter_names_the_field(value: object, message: str) -> None:
    with pytest.raises(QueryError, match=f"^{message}") as caught:
        parse_filter(value)

    assert caught.value.field == "filter"
