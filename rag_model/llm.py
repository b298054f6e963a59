"""An OpenAI-compatible chat generator (OpenAI, vLLM, Ollama, llama.cpp servers ...).

The ``openai`` SDK does the HTTP work, including retries with exponential backoff on 408, 409,
429 and 5xx (``max_retries``) and the timeout. Every failure becomes a ``GenerationError`` that
says what happened and what to check, never a hang. The API key is read from the environment
variable that ``api_key_env`` names, when the first request is made; it is never stored.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from rag_model.config import GenerationConfig
from rag_model.documents import RetrievedChunk
from rag_model.errors import GenerationError
from rag_model.generation import Generation, Generator
from rag_model.prompts import build_prompt, cited_ids
from rag_model.tracing import content, is_tracing_enabled

# local servers accept any key; the SDK insists on a non-empty one
NO_KEY_NEEDED = "not-needed"
CONDENSE_PROMPT = (
    "Rewrite the last question of this conversation as a standalone question that names what "
    "its pronouns refer to. Answer with the question only.\n\n{history}\nUser: {question}"
)


class OpenAIGenerator(Generator):
    """Answers with an LLM from a prompt of numbered passages; citations map back to chunk ids.

    Example:
        >>> config = GenerationConfig(generator="openai", base_url="http://127.0.0.1:8001/v1")
        >>> OpenAIGenerator(config).generate("Who built it?", chunks).citations
        ['3140cde6...']
    """

    span_type = "LLM"

    def __init__(self, config: GenerationConfig) -> None:
        self.config = config
        self._client: Any = None

    def _client_or_raise(self) -> Any:
        if self._client is None:
            try:
                from openai import OpenAI
            except ImportError as exc:
                raise GenerationError(
                    "the openai generator needs the openai package; run 'pip install openai==3.3.0'"
                ) from exc
            key = os.environ.get(self.config.api_key_env)
            if not key:
                if self.config.base_url is None:
                    raise GenerationError(
                        f"no API key: set the environment variable {self.config.api_key_env} "
                        "(named by generation.api_key_env), or set generation.base_url to a "
                        "local OpenAI-compatible server"
                    )
                key = NO_KEY_NEEDED
            self._client = OpenAI(
                api_key=key,
                base_url=self.config.base_url,
                timeout=self.config.timeout_seconds,
                max_retries=self.config.max_retries,
            )
        return self._client

    def _request(self, question: str, contexts: Sequence[RetrievedChunk], stream: bool) -> Any:
        return self._complete(build_prompt(question, contexts, self.config.prompt_template), stream)

    def _complete(self, prompt: str, stream: bool) -> Any:
        import openai

        where = self.config.base_url or "the OpenAI API"
        try:
            return self._client_or_raise().chat.completions.create(
                model=self.config.model,
                messages=[{"role": "user", "content": prompt}],
                temperature=self.config.temperature,
                max_tokens=self.config.max_tokens,
                stream=stream,
            )
        except openai.AuthenticationError:
            raise GenerationError(
                f"{where} refused the API key (401); check {self.config.api_key_env}"
            ) from None
        except openai.RateLimitError:
            raise GenerationError(
                f"{where} is rate limiting (429) after {self.config.max_retries} retries; "
                "retry later or raise generation.max_retries"
            ) from None
        except openai.APITimeoutError:
            raise GenerationError(
                f"{where} did not answer within {self.config.timeout_seconds:g} s "
                "(generation.timeout_seconds)"
            ) from None
        except openai.APIConnectionError as exc:
            raise GenerationError(f"cannot reach {where}: {exc}") from None
        except openai.APIStatusError as exc:
            raise GenerationError(f"{where} answered {exc.status_code}: {exc.message}") from None

    def condense(self, previous: Sequence[str], question: str) -> str:
        """``question`` rewritten by the LLM as a standalone question, given earlier user turns.

        Raises:
            GenerationError: the LLM failed or answered nothing usable.
        """
        history = "\n".join(f"User: {turn}" for turn in previous)
        prompt = CONDENSE_PROMPT.format(history=history, question=question)
        response = self._complete(prompt, stream=False)
        try:
            text = response.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            text = None
        if not isinstance(text, str) or not text.strip():
            raise GenerationError(
                f"malformed response from {self.config.base_url or 'the OpenAI API'} to the "
                "request to condense a follow-up question"
            )
        return text.strip().splitlines()[0][:2000]

    def generate(self, question: str, contexts: Sequence[RetrievedChunk]) -> Generation:
        response = self._request(question, contexts, stream=False)
        try:
            text = response.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            text = None
        if not isinstance(text, str):
            raise GenerationError(
                f"malformed response from {self.config.base_url or 'the OpenAI API'}: "
                "no choices[0].message.content"
            )
        usage = _usage(response)
        details: dict[str, Any] = {}
        if is_tracing_enabled():
            details = {
                "model": self.config.model,
                "prompt": content(build_prompt(question, contexts, self.config.prompt_template)),
                "completion": content(text),
                "token_usage": _trace_usage(usage),
            }
        return Generation(text.strip(), cited_ids(text, contexts), usage=usage, details=details)

    def stream(self, question: str, contexts: Sequence[RetrievedChunk]) -> Iterator[str]:
        import openai

        try:
            for chunk in self._request(question, contexts, stream=True):
                choices = getattr(chunk, "choices", None) or []
                piece = getattr(choices[0].delta, "content", None) if choices else None
                if piece:
                    yield piece
        except openai.APIError as exc:  # the stream broke off part way
            raise GenerationError(f"the answer stream failed: {exc}") from None


def _usage(response: Any) -> dict[str, int] | None:
    """The token counts the server reported (OpenAI's ``usage``), or None if it sent none."""
    usage = getattr(response, "usage", None)
    counts = {
        name: getattr(usage, name, None)
        for name in ("prompt_tokens", "completion_tokens", "total_tokens")
    }
    if not all(isinstance(count, int) for count in counts.values()):
        return None
    return counts  # type: ignore[return-value]


def _trace_usage(usage: dict[str, int] | None) -> dict[str, int] | None:
    """OpenAI's token counts under the names MLflow's LLM spans use (input, output, total)."""
    if usage is None:
        return None
    return {
        "input_tokens": usage["prompt_tokens"],
        "output_tokens": usage["completion_tokens"],
        "total_tokens": usage["total_tokens"],
    }
