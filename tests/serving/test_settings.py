"""RAG_* settings: defaults, parsing and errors that name the variable."""

import socket

import pytest

from rag_model.errors import ConfigError
from serving.settings import Settings


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.model_uri == "models:/rag-model@production"
    assert settings.workers == 2
    assert settings.torch_threads == 1


def test_reads_prefixed_variables() -> None:
    settings = Settings.from_env({"RAG_MAX_K": "20", "RAG_MODEL_URI": "models:/x@prod"})
    assert settings.max_k == 20
    assert settings.model_uri == "models:/x@prod"


@pytest.mark.parametrize(
    ("value", "message"),
    [("ten", "RAG_WORKERS must be an integer, got 'ten'"), ("0", "RAG_WORKERS must be > 0, got 0")],
)
def test_bad_values_name_the_variable(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"RAG_WORKERS": value})


def test_zero_turns_off_the_caches_and_batching_but_not_the_rest() -> None:
    settings = Settings.from_env({"RAG_ANSWER_CACHE_SIZE": "0", "RAG_BATCH_WAIT_MS": "0"})
    assert (settings.answer_cache_size, settings.batch_wait_ms) == (0, 0)
    with pytest.raises(ConfigError, match="RAG_BATCH_MAX must be > 0, got 0"):
        Settings.from_env({"RAG_BATCH_MAX": "0"})
    with pytest.raises(ConfigError, match="RAG_BATCH_WAIT_MS must be >= 0, got -1"):
        Settings.from_env({"RAG_BATCH_WAIT_MS": "-1"})


def test_replica_settings() -> None:
    settings = Settings.from_env({"RAG_PROXY_HOPS": "0", "RAG_BIND": "0.0.0.0:8123"})
    assert (settings.proxy_hops, settings.graceful_timeout) == (0, 30)
    assert settings.served_by() == f"{socket.gethostname()}:8123"
    named = Settings.from_env({"RAG_INSTANCE_NAME": "pod-a", "RAG_PROXY_HOPS": "1"})
    assert (named.served_by(), named.proxy_hops) == ("pod-a", 1)


def test_trace_settings() -> None:
    settings = Settings.from_env(
        {
            "RAG_TRACE_SAMPLE_RATIO": "0.25",
            "RAG_TRACE_CONTENT": "false",
            "RAG_TRACE_EXPERIMENT": "x",
        }
    )
    assert (settings.trace_sample_ratio, settings.trace_content) == (0.25, False)
    assert settings.trace_experiment == "x"
    with pytest.raises(ConfigError, match="RAG_TRACE_SAMPLE_RATIO must be between 0 and 1"):
        Settings.from_env({"RAG_TRACE_SAMPLE_RATIO": "1.5"})
    with pytest.raises(ConfigError, match="RAG_TRACE_SAMPLE_RATIO must be a number, got 'all'"):
        Settings.from_env({"RAG_TRACE_SAMPLE_RATIO": "all"})
    with pytest.raises(ConfigError, match="RAG_TRACE_CONTENT must be true or false, got 'maybe'"):
        Settings.from_env({"RAG_TRACE_CONTENT": "maybe"})
