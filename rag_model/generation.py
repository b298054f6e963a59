"""The generator interface: the ``Generation`` an answer is, and the ``Generator`` base class.

Kept apart from the implementations (``generators``, ``llm``) so that each of them can import
the interface without importing the other.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rag_model.documents import RetrievedChunk

_PIECE_END = re.compile(r"(?<=\])\s+")  # after a citation marker: "Sentence. [1] Next..."


@dataclass(frozen=True)
class Generation:
    """An answer and the ids of the chunks it cites; ``[n]`` in the text is the n-th source."""

    text: str
    citations: list[str] = field(default_factory=list)
    confidence: float | None = None  # extractive: best sentence similarity to the question
    # tokens the LLM counted ({prompt_tokens, completion_tokens, total_tokens}); None when the
    # generator counts none (extractive, echo) or the LLM server did not say
    usage: dict[str, int] | None = None
    # what the ``rag.generate`` span shows beyond the answer (filled only while tracing:
    # the prompt and token usage of an LLM, the sentences the extractive generator chose)
    details: Mapping[str, Any] = field(default_factory=dict)


class Generator(ABC):
    """Produces an answer from a question and retrieved chunks."""

    span_type: str = "CHAIN"  # the type of its ``rag.generate`` span (LLM for a model call)

    @abstractmethod
    def generate(self, question: str, contexts: Sequence[RetrievedChunk]) -> Generation:
        """Answer ``question`` from ``contexts``; cite with ``[n]``, n = 1-based context rank."""

    def stream(self, question: str, contexts: Sequence[RetrievedChunk]) -> Iterator[str]:
        """The answer as pieces of text (here: one cited sentence at a time)."""
        text = self.generate(question, contexts).text
        pieces = _PIECE_END.split(text)
        for number, piece in enumerate(pieces):
            yield piece + (" " if number < len(pieces) - 1 else "")
