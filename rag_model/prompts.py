"""Prompts with numbered context passages, and mapping ``[n]`` citations back to chunk ids."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from rag_model.documents import RetrievedChunk

DEFAULT_TEMPLATE = (
    "Answer the question using only the numbered passages below. Cite every passage you use "
    "with its number in square brackets, like [1] or [2][3]. If the passages do not contain "
    "the answer, say that you cannot find it in the documents.\n\n"
    "Passages:\n{context}\n\nQuestion: {question}\nAnswer:"
)
TEMPLATE_FIELDS = {"context", "question"}
_CITATION = re.compile(r"\[(\d{1,3})\]")


def template_fields(template: str) -> set[str]:
    """The ``{name}`` fields a template uses."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def build_prompt(question: str, chunks: Sequence[RetrievedChunk], template: str) -> str:
    """Fill ``template`` with the question and the chunks as ``[1] text`` passages."""
    context = "\n\n".join(f"[{n}] {chunk.text}" for n, chunk in enumerate(chunks, start=1))
    return template.format(context=context, question=question)


def cited_ids(text: str, chunks: Sequence[RetrievedChunk]) -> list[str]:
    """The ids of the chunks an answer cites with ``[n]``, in order of first citation.

    Numbers outside 1..len(chunks) (a model inventing a passage) are ignored.
    """
    ids: list[str] = []
    for match in _CITATION.finditer(text):
        number = int(match.group(1))
        if 1 <= number <= len(chunks) and chunks[number - 1].id not in ids:
            ids.append(chunks[number - 1].id)
    return ids
