"""LLM-judged metrics via any OpenAI-compatible endpoint: ragas faithfulness, relevancy, precision.

The key is read from the environment variable the caller names, at construction, and is never
logged or stored.
"""

from __future__ import annotations

import os
from functools import cached_property

from evaluation.answer_metrics import AnswerCase, RagasEmbedding, strip_citations
from rag_model.embedders import Embedder
from rag_model.errors import ConfigError, RagError

NAN = float("nan")
JUDGE_METRICS = ("faithfulness", "answer_relevancy", "llm_context_precision")


class JudgeError(RagError):
    """The LLM judge could not be reached or answered something unusable."""


class LLMJudge:
    """ragas's LLM metrics for one question at a time.

    Args:
        base_url: the judge's OpenAI-compatible URL, e.g. ``http://127.0.0.1:8080/v1``.
        model: the judge's model name.
        api_key_env: the name of the environment variable that holds the key.
        embedder: embeds the questions ragas generates for answer relevancy.
        timeout_seconds: per request; a judge that hangs must not hang the evaluation.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str,
        embedder: Embedder | None = None,
        timeout_seconds: float = 60.0,
    ) -> None:
        if not model:
            raise ConfigError("--judge-model is required with --judge-base-url")
        if not api_key_env.isidentifier():
            raise ConfigError(
                f"--judge-api-key-env must name an environment variable (e.g. OPENAI_API_KEY), "
                f"not hold a key; got a value of {len(api_key_env)} characters"
            )
        self._key = os.environ.get(api_key_env, "")
        if not self._key:
            raise ConfigError(
                f"the LLM judge needs its API key in ${api_key_env}; set it (or choose another "
                "variable with --judge-api-key-env)"
            )
        self.base_url = base_url
        self.model = model
        self.timeout_seconds = timeout_seconds
        self.embedder = embedder

    def with_embedder(self, embedder: Embedder) -> LLMJudge:
        """This judge using ``embedder`` for answer relevancy (the pipeline's own)."""
        self.embedder = self.embedder or embedder
        return self

    def load(self) -> LLMJudge:
        """Build the ragas metrics and the client now, in this thread.

        See ``OfflineAnswerMetrics.load``: MLflow scores in worker threads.
        """
        self._metrics  # noqa: B018 - a cached property: evaluating it is the point
        return self

    @cached_property
    def _metrics(self) -> dict[str, object]:
        from openai import AsyncOpenAI
        from ragas.llms import llm_factory
        from ragas.metrics.collections import (
            AnswerRelevancy,
            ContextPrecisionWithReference,
            Faithfulness,
        )

        if self.embedder is None:
            raise ConfigError("the LLM judge needs an embedder for answer relevancy")
        client = AsyncOpenAI(
            base_url=self.base_url, api_key=self._key, timeout=self.timeout_seconds, max_retries=2
        )
        llm = llm_factory(self.model, client=client)
        return {
            "faithfulness": Faithfulness(llm=llm),
            "answer_relevancy": AnswerRelevancy(
                llm=llm, embeddings=RagasEmbedding(self.embedder), strictness=1
            ),
            "llm_context_precision": ContextPrecisionWithReference(llm=llm),
        }

    def score(self, case: AnswerCase) -> dict[str, float]:
        """Faithfulness, answer relevancy and (with a reference answer) context precision.

        Raises:
            JudgeError: the judge failed (unreachable, refused the key, unusable output).
        """
        try:
            return self._score(case)
        except ConfigError:
            raise
        except Exception as exc:  # openai, instructor and ragas each raise their own kinds
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise JudgeError(
                f"the LLM judge at {self.base_url} (model {self.model}) failed: "
                f"{type(exc).__name__}: {first_line[:300]}"
            ) from exc

    def _score(self, case: AnswerCase) -> dict[str, float]:
        answer = strip_citations(case.answer)
        metrics = self._metrics
        scores = {
            "faithfulness": metrics["faithfulness"]
            .score(
                user_input=case.question,
                response=answer,
                retrieved_contexts=case.retrieved_contexts,
            )
            .value,
            "answer_relevancy": metrics["answer_relevancy"]
            .score(user_input=case.question, response=answer)
            .value,
            "llm_context_precision": NAN,
        }
        if case.reference_answers:
            scores["llm_context_precision"] = (
                metrics["llm_context_precision"]
                .score(
                    user_input=case.question,
                    reference=case.reference_answers[0],
                    retrieved_contexts=case.retrieved_contexts,
                )
                .value
            )
        return {name: float(value) for name, value in scores.items()}
