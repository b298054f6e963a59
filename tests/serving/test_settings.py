"""RAG_* settings: defaults, parsing and errors that name the variable."""

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
