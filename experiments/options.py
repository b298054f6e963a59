"""Options shared by the commands that build or evaluate: declared once, parsed once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from experiments.params import OptionalInt, config_overrides, option
from rag_model.config import HASH_MODEL_ID, RagConfig
from rag_model.embedding_cache import DEFAULT_CACHE_PATH

DEFAULT_DATA = "data/sample/corpus.jsonl"
DEFAULT_EVAL = "data/sample/eval.jsonl"

_CONFIG_OPTIONS = [
    option("--config", "config_path", default="", help="YAML file of config overrides."),
    option("--chunk-size", type=OptionalInt(1), default="", help="Override chunking.chunk_size."),
    option(
        "--chunk-overlap", type=OptionalInt(0), default="", help="Override chunking.chunk_overlap."
    ),
    option("--k", type=OptionalInt(1), default="", help="Override retrieval.k."),
    option("--fake", is_flag=True, help="Hash embedder + echo generator: a fast smoke run."),
]

_EVAL_OPTIONS = [
    click.option(  # a plain option: an empty eval path is refused, not defaulted
        "--eval-path",
        default=DEFAULT_EVAL,
        show_default=True,
        help="Eval set: .jsonl, SQuAD .json, or a BEIR folder (queries.jsonl + qrels/).",
    ),
    option("--split", default="test", show_default=True, help="BEIR qrels split."),
    option("--max-questions", type=OptionalInt(1), default="", help="Evaluate the first N only."),
    option("--judge-base-url", default="", help="OpenAI-compatible URL of an LLM judge."),
    option("--judge-model", default="", help="The judge's model name."),
    option(
        "--judge-api-key-env",
        default="OPENAI_API_KEY",
        show_default=True,
        help="Environment variable holding the judge's API key (never the key itself).",
    ),
]


# where the work runs: in this process, or on Spark (rag_spark; master from RAG_SPARK_MASTER,
# default local[2])
ENGINES = ("local", "spark")
engine_option = option(
    "--engine",
    type=click.Choice(ENGINES),
    default="local",
    show_default=True,
    help="Chunk and embed in this process, or on Spark (master: $RAG_SPARK_MASTER or local[2]).",
)
predict_with_option = option(
    "--predict-with",
    type=click.Choice(ENGINES),
    default="local",
    show_default=True,
    help="Answer the eval set in this process (timed), or on Spark through "
    "mlflow.pyfunc.spark_udf (no latency metrics: a batch's time says nothing about one "
    "question's).",
)


# every build reads and fills the persistent embedding cache: a rebuild embeds only new texts
embedding_cache_option = option(
    "--embedding-cache",
    "embedding_cache",
    default=DEFAULT_CACHE_PATH,
    show_default=True,
    envvar="RAG_EMBEDDING_CACHE",
    help="Embedding cache file (SQLite) shared by every build; 'none' embeds everything.",
)
quiet_option = option("--quiet", is_flag=True, help="No progress bars or step lines.")


def _apply(options: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    def decorate(function: Any) -> Any:
        for decorator in reversed(options):
            function = decorator(function)
        return function

    return decorate


config_options = _apply(_CONFIG_OPTIONS)
eval_options = _apply(_EVAL_OPTIONS)


def load_config(
    config_path: str,
    fake: bool,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    k: int | None = None,
) -> RagConfig:
    """The config from the YAML file (or defaults), with the command-line overrides applied."""
    config = RagConfig.from_yaml(config_path) if config_path else RagConfig()
    if fake:
        config = config.with_overrides(
            {
                "embedding.model": HASH_MODEL_ID,
                "embedding.backend": "torch",  # the fake runs as it is: nothing to export
                "generation.generator": "echo",
            }
        )
    return config.with_overrides(
        config_overrides(
            **{
                "chunking.chunk_size": chunk_size,
                "chunking.chunk_overlap": chunk_overlap,
                "retrieval.k": k,
            }
        )
    )


def load_eval(eval_path: str, split: str, max_questions: int | None) -> Any:
    """The eval set, read before any expensive work so a bad path fails in a second."""
    from evaluation.dataset import load_eval_set

    return load_eval_set(eval_path, split=split, limit=max_questions)


def make_judge(base_url: str, model: str, api_key_env: str) -> Any:
    """The LLM judge when a base URL is given, else None (offline metrics only)."""
    if not base_url:
        return None
    from evaluation.judge import LLMJudge

    return LLMJudge(base_url=base_url, model=model, api_key_env=api_key_env)
