"""Context recall and precision as coverage: is the reference context in the retrieved text?

ragas's non-LLM context metrics compare whole strings (a quote of one sentence against a chunk of
a dozen sentences reads ~0.02 even when the chunk contains the quote word for word), so they
measure length mismatch, not retrieval. Here a reference token counts as *covered* when it lies
in a run of at least ``MIN_RUN`` consecutive tokens that the other text also contains in that
order: a quoted sentence inside a long chunk is fully covered, a paragraph split over three
chunks is covered by the three together, and common words scattered through an unrelated chunk
cover nothing. Definitions in docs/evaluation.md ("Context coverage").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MIN_RUN = 3  # tokens: a shared trigram, not a shared word, is evidence of the same text
RELEVANT_SHARE = 0.5  # a chunk covers a reference when half of one lies in the other
NAN = float("nan")
_TOKEN = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens (punctuation and spacing do not matter)."""
    return _TOKEN.findall(text.lower())


def _ngrams(words: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def covered_tokens(reference: Sequence[str], texts: Sequence[Sequence[str]]) -> int:
    """How many tokens of ``reference`` lie in a run of ``MIN_RUN`` tokens found in ``texts``.

    A reference shorter than ``MIN_RUN`` tokens is covered whole or not at all (it must appear
    as a contiguous run in one of the texts).
    """
    if not reference:
        return 0
    n = min(MIN_RUN, len(reference))
    found: set[tuple[str, ...]] = set()
    for text in texts:
        found |= _ngrams(text, n)
    covered = [False] * len(reference)
    for start in range(len(reference) - n + 1):
        if tuple(reference[start : start + n]) in found:
            covered[start : start + n] = [True] * n
    return sum(covered)


def coverage(reference: Sequence[str], texts: Sequence[Sequence[str]]) -> float:
    """The share of ``reference``'s tokens covered by ``texts`` (0 for an empty reference)."""
    return covered_tokens(reference, texts) / len(reference) if reference else 0.0


def context_recall(reference_contexts: Sequence[str], retrieved: Sequence[str]) -> float:
    """Share of the reference contexts' tokens covered by the retrieved chunks together.

    Pooled over the references (a long reference weighs by its length); NaN when there is no
    reference context or nothing was retrieved.
    """
    references = [t for t in (tokens(r) for r in reference_contexts) if t]
    chunks = [tokens(c) for c in retrieved]
    if not references or not chunks:
        return NAN
    total = sum(len(r) for r in references)
    return sum(covered_tokens(r, chunks) for r in references) / total


def chunk_is_relevant(chunk: Sequence[str], references: Sequence[Sequence[str]]) -> bool:
    """Does ``chunk`` cover a reference, or lie inside one, for at least ``RELEVANT_SHARE``?

    Both directions, so a quote-style reference inside a long chunk and a chunk cut from a
    paragraph-style reference each count.
    """
    return any(
        coverage(reference, [chunk]) >= RELEVANT_SHARE
        or coverage(chunk, [reference]) >= RELEVANT_SHARE
        for reference in references
    )


def context_precision(reference_contexts: Sequence[str], retrieved: Sequence[str]) -> float:
    """Share of the retrieved chunks that cover some reference context (``chunk_is_relevant``).

    NaN when there is no reference context or nothing was retrieved.
    """
    references = [t for t in (tokens(r) for r in reference_contexts) if t]
    if not references or not retrieved:
        return NAN
    relevant = [chunk_is_relevant(tokens(chunk), references) for chunk in retrieved]
    return sum(relevant) / len(relevant)
