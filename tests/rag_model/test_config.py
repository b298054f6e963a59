"""Tests for RagConfig: defaults, strict validation with dotted messages, overrides, YAML."""

from __future__ import annotations

import json
import re

import pytest
from pydantic import ValidationError

from rag_model.config import HASH_MODEL_ID, MINILM_MODEL_ID, RagConfig
from rag_model.errors import ConfigError


def test_defaults() -> None:
    config = RagConfig()

    assert config.chunking.strategy == "recursive"
    assert (config.chunking.chunk_size, config.chunking.chunk_overlap) == (800, 100)
    assert config.embedding.model == MINILM_MODEL_ID
    assert config.embedding.batch_size == 32
    assert config.embedding.normalize is True
    assert config.index.space == "cosine"
    assert (config.index.hnsw_m, config.index.hnsw_construction_ef) == (16, 100)
    assert config.index.hnsw_search_ef == 100
    assert config.retrieval.k == 4
    assert (config.retrieval.mode, config.retrieval.fusion) == ("hybrid", "weighted")
    assert config.generation.generator == "extractive"
    assert config.generation.max_sentences == 2


@pytest.mark.parametrize("data", [None, {}])
def test_from_dict_of_nothing_gives_the_defaults(data: dict | None) -> None:
    assert RagConfig.from_dict(data) == RagConfig()


def test_from_dict_with_partial_sections_keeps_other_defaults() -> None:
    config = RagConfig.from_dict({"chunking": {"chunk_size": 500}, "retrieval": {"k": 3}})

    assert config.chunking.chunk_size == 500
    assert config.chunking.chunk_overlap == 100
    assert config.retrieval.k == 3
    assert config.embedding == RagConfig().embedding
    assert config.index == RagConfig().index
    assert config.generation == RagConfig().generation


def test_unknown_top_level_key_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"^invalid config: chunkin: unknown key \(check the"):
        RagConfig.from_dict({"chunkin": {"chunk_size": 500}})


def test_unknown_nested_key_is_rejected_with_its_dotted_name() -> None:
    with pytest.raises(ConfigError, match="chunking.chunk_sise: unknown key"):
        RagConfig.from_dict({"chunking": {"chunk_sise": 500}})


def test_every_problem_is_named_in_one_message() -> None:
    with pytest.raises(ConfigError) as caught:
        RagConfig.from_dict({"chunking": {"chunk_sise": 500}, "retrieval": {"k": 0}})

    message = str(caught.value)
    assert "chunking.chunk_sise: unknown key" in message
    assert "retrieval.k: Input should be greater than 0 (got 0)" in message


@pytest.mark.parametrize(("size", "overlap"), [(100, 100), (100, 150)])
def test_overlap_not_below_size_is_rejected(size: int, overlap: int) -> None:
    expected = (
        f"chunking: chunk_overlap must be less than chunk_size, got chunk_overlap={overlap} "
        f"and chunk_size={size}"
    )
    with pytest.raises(ConfigError, match=re.escape(expected)):
        RagConfig.from_dict({"chunking": {"chunk_size": size, "chunk_overlap": overlap}})


@pytest.mark.parametrize("k", [0, -1])
def test_k_below_one_is_rejected(k: int) -> None:
    with pytest.raises(
        ConfigError, match=re.escape(f"retrieval.k: Input should be greater than 0 (got {k})")
    ):
        RagConfig.from_dict({"retrieval": {"k": k}})


def test_k_above_the_maximum_is_rejected() -> None:
    with pytest.raises(ConfigError, match="retrieval.k: Input should be less than or equal to 200"):
        RagConfig.from_dict({"retrieval": {"k": 201}})


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("retrieval", "k", "3", "retrieval.k: Input should be a valid integer (got '3')"),
        ("chunking", "chunk_size", 500.0, "chunking.chunk_size: Input should be a valid integer"),
        ("embedding", "normalize", "yes", "embedding.normalize: Input should be a valid boolean"),
    ],
)
def test_values_are_not_coerced(section: str, key: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        RagConfig.from_dict({section: {key: value}})


def test_unknown_embedding_model_lists_the_allowed_ones() -> None:
    expected = f"embedding: model must be one of {MINILM_MODEL_ID}, {HASH_MODEL_ID}, got 'bert'"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        RagConfig.from_dict({"embedding": {"model": "bert"}})


def test_unknown_generator_is_rejected() -> None:
    with pytest.raises(ConfigError, match="generation.generator: Input should be 'extractive'"):
        RagConfig.from_dict({"generation": {"generator": "gpt"}})


def test_config_that_is_not_a_mapping_is_rejected() -> None:
    with pytest.raises(ConfigError, match="^config must be a mapping of sections, got list$"):
        RagConfig.from_dict([("retrieval", {"k": 3})])  # type: ignore[arg-type]


def test_section_that_is_not_a_mapping_is_rejected() -> None:
    with pytest.raises(ConfigError, match="chunking: Input should be a valid dictionary"):
        RagConfig.from_dict({"chunking": 500})


def test_config_is_frozen() -> None:
    config = RagConfig()

    with pytest.raises(ValidationError, match="Instance is frozen"):
        config.retrieval.k = 5  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Instance is frozen"):
        config.retrieval = RagConfig().retrieval  # type: ignore[misc]
    assert config.retrieval.k == 4


def test_to_dict_from_dict_round_trip() -> None:
    config = RagConfig.from_dict(
        {
            "chunking": {"chunk_size": 300, "chunk_overlap": 30},
            "embedding": {"model": HASH_MODEL_ID, "batch_size": 8, "normalize": False},
            "index": {"space": "l2", "hnsw_m": 8},
            "retrieval": {"k": 6},
            "generation": {"generator": "echo", "max_sentences": 3},
        }
    )

    data = config.to_dict()

    assert RagConfig.from_dict(data) == config
    assert RagConfig.from_dict(json.loads(json.dumps(data))) == config  # JSON-compatible
    assert data["retrieval"] == {
        "mode": "hybrid",
        "k": 6,
        "fetch_k": 20,
        "fusion": "weighted",
        "rrf_k": 60,
        "dense_weight": 0.5,
        "score_threshold": None,
        "sentence_weight": 0.0,
        "sentence_depth": 20,
        "search_unit": "chunk",
        "rerank": None,
    }


def test_flatten_gives_dotted_keys() -> None:
    flat = RagConfig.from_dict({"retrieval": {"k": 3}}).flatten()

    assert flat["retrieval.k"] == 3
    assert flat["chunking.chunk_size"] == 800
    assert flat["embedding.model"] == MINILM_MODEL_ID
    assert set(flat) == {
        "chunking.strategy",
        "chunking.chunk_size",
        "chunking.chunk_overlap",
        "embedding.model",
        "embedding.backend",
        "embedding.query_cache_size",
        "embedding.batch_size",
        "embedding.normalize",
        "index.space",
        "index.hnsw_m",
        "index.hnsw_construction_ef",
        "index.hnsw_search_ef",
        "index.sentence_vectors",
        "index.location",
        "index.server_url",
        "index.collection",
        "index.token_env",
        "index.server_verify",
        "retrieval.mode",
        "retrieval.k",
        "retrieval.fetch_k",
        "retrieval.fusion",
        "retrieval.rrf_k",
        "retrieval.dense_weight",
        "retrieval.score_threshold",
        "retrieval.sentence_weight",
        "retrieval.sentence_depth",
        "retrieval.search_unit",
        "retrieval.rerank",
        "generation.generator",
        "generation.max_sentences",
        "generation.model",
        "generation.base_url",
        "generation.api_key_env",
        "generation.temperature",
        "generation.max_tokens",
        "generation.timeout_seconds",
        "generation.max_retries",
        "generation.prompt_template",
    }


def test_with_overrides_applies_and_leaves_the_original_unchanged() -> None:
    base = RagConfig()

    changed = base.with_overrides({"retrieval.k": 7, "chunking.chunk_size": 500})

    assert changed.retrieval.k == 7
    assert changed.chunking.chunk_size == 500
    assert changed.chunking.chunk_overlap == 100
    assert base == RagConfig()


def test_with_overrides_validates_the_result() -> None:
    with pytest.raises(ConfigError, match="chunking: chunk_overlap must be less than chunk_size"):
        RagConfig().with_overrides({"chunking.chunk_overlap": 800})
    with pytest.raises(ConfigError, match="retrieval.k: Input should be greater than 0"):
        RagConfig().with_overrides({"retrieval.k": 0})


@pytest.mark.parametrize("key", ["retrival.k", "retrieval", "k"])
def test_with_overrides_rejects_an_unknown_section_or_undotted_key(key: str) -> None:
    expected = (
        f"unknown config key {key!r}; keys look like 'retrieval.k', sections are "
        "chunking, embedding, index, retrieval, generation"
    )
    with pytest.raises(ConfigError, match=re.escape(expected)):
        RagConfig().with_overrides({key: 3})


def test_with_overrides_rejects_an_unknown_field() -> None:
    with pytest.raises(ConfigError, match="retrieval.kk: unknown key"):
        RagConfig().with_overrides({"retrieval.kk": 3})


def test_from_yaml_reads_overrides_onto_the_defaults(tmp_path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("chunking:\n  chunk_size: 400\nretrieval:\n  k: 2\n", encoding="utf-8")

    config = RagConfig.from_yaml(path)

    assert config == RagConfig.from_dict({"chunking": {"chunk_size": 400}, "retrieval": {"k": 2}})


def test_from_yaml_of_an_empty_file_gives_the_defaults(tmp_path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")

    assert RagConfig.from_yaml(path) == RagConfig()


def test_from_yaml_reports_a_missing_file(tmp_path) -> None:
    path = tmp_path / "nope.yaml"

    with pytest.raises(
        ConfigError, match=re.escape(f"cannot read config file {path}: No such file or directory")
    ):
        RagConfig.from_yaml(path)


def test_from_yaml_reports_invalid_yaml_with_the_path(tmp_path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("retrieval:\n  k: [\n", encoding="utf-8")

    with pytest.raises(ConfigError, match=re.escape(f"config file {path} is not valid YAML: ")):
        RagConfig.from_yaml(path)


def test_from_yaml_reports_invalid_values_with_the_path(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("retrieval:\n  k: 0\n", encoding="utf-8")

    expected = f"{path}: invalid config: retrieval.k: Input should be greater than 0 (got 0)"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        RagConfig.from_yaml(path)


def test_from_yaml_rejects_a_list(tmp_path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- retrieval\n", encoding="utf-8")

    with pytest.raises(
        ConfigError, match=re.escape(f"{path}: config must be a mapping of sections, got list")
    ):
        RagConfig.from_yaml(path)


SERVER_INDEX = {"location": "server", "server_url": "http://127.0.0.1:8000", "collection": "docs"}


def test_index_is_bundled_by_default() -> None:
    index = RagConfig().index

    assert index.location == "bundled"
    assert (index.server_url, index.collection, index.token_env) == (None, None, None)
    assert index.server_verify == "digest"


def test_server_index_keeps_its_settings() -> None:
    index = RagConfig.from_dict(
        {"index": {**SERVER_INDEX, "server_url": "https://chroma.internal:443", "token_env": "T"}}
    ).index

    assert (index.location, index.server_url) == ("server", "https://chroma.internal:443")
    assert (index.collection, index.token_env) == ("docs", "T")


@pytest.mark.parametrize(
    ("index", "message"),
    [
        (
            {"location": "server"},
            "index: location 'server' needs server_url (e.g. http://127.0.0.1:8000) and "
            "collection (the name the snapshot was published under)",
        ),
        (
            {"location": "server", "server_url": "http://127.0.0.1:8000"},
            "index: location 'server' needs server_url",
        ),
        (
            {"collection": "docs"},
            "index: collection applies only to location 'server'; set location: server, or "
            "remove them to bundle the index in the model",
        ),
        (
            {"server_url": "http://h:1", "token_env": "T"},
            "index: server_url, token_env apply only to location 'server'",
        ),
        (
            {**SERVER_INDEX, "server_url": "127.0.0.1:8000"},
            "index: server_url must look like http://host:port, got '127.0.0.1:8000'",
        ),
        (
            {**SERVER_INDEX, "server_url": "http://127.0.0.1"},
            "index: server_url must include a port between 1 and 65535 (chroma run serves "
            "8000), got 'http://127.0.0.1'",
        ),
        (
            {**SERVER_INDEX, "server_url": "http://127.0.0.1:70000"},
            "index: server_url must include a port between 1 and 65535",
        ),
        (
            {**SERVER_INDEX, "server_url": "http://127.0.0.1:8000/api"},
            "index: server_url must be only scheme, host and port, got 'http://127.0.0.1:8000/api'",
        ),
        (
            {**SERVER_INDEX, "server_url": "http://admin:secret@127.0.0.1:8000"},
            "index: server_url must not hold credentials; put the token in an environment "
            "variable and name it in token_env",
        ),
        (
            {**SERVER_INDEX, "collection": "-docs"},
            "index: collection must be 3-512 characters from [a-zA-Z0-9._-], starting and "
            "ending with a letter or digit (Chroma's rule), got '-docs'",
        ),
        (
            {**SERVER_INDEX, "token_env": "ck-1f2e3d"},
            "index: token_env must name the environment variable that holds the Chroma token "
            "(e.g. CHROMA_TOKEN), never the token itself",
        ),
        (
            {**SERVER_INDEX, "location": "remote"},
            "index.location: Input should be 'bundled' or 'server' (got 'remote')",
        ),
    ],
)
def test_server_index_settings_are_checked(index: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        RagConfig.from_dict({"index": index})
