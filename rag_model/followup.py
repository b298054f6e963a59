"""Follow-up questions in a conversation: the question retrieval should use.

"When did he die?" alone retrieves nothing useful; the conversation says who "he" is. With an
LLM generator, the LLM rewrites the last question as a standalone one (``condense``). Offline,
a rule: when the last question looks like a follow-up (a pronoun or a determiner pointing
back, or an elliptic opening such as "and" or "what about"), the previous user turn is
folded into the retrieval query. ``bench/multiturn.py`` measures both on
``data/sample/multiturn.jsonl``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

# words that point back to something said before (English); "it" and "they" included: in a
# retrieval question they nearly always do
POINTING = frozenset(
    "he she it its they them their theirs his her hers him this that these those there "
    "such former latter".split()
)
OPENINGS = ("and ", "what about ", "how about ", "also ", "then ")
_WORD = re.compile(r"[a-z']+")


def is_follow_up(question: str) -> bool:
    """Whether ``question`` looks like it depends on earlier turns.

    Example:
        >>> is_follow_up("When did he die?"), is_follow_up("When did Rollo die?")
        (True, False)
    """
    text = question.strip().lower()
    if text.startswith(OPENINGS):
        return True
    return any(word in POINTING for word in _WORD.findall(text))


def fold(previous: Sequence[str], question: str, turns: int = 1) -> str:
    """The retrieval query: the last ``turns`` previous user turns, then ``question``."""
    earlier = [turn.strip() for turn in previous[-turns:] if turn.strip()] if turns else []
    return " ".join([*earlier, question.strip()])


def standalone(question: str, previous: Sequence[str], generator: Any = None) -> str:
    """The question to retrieve (and answer) with, given the earlier user turns.

    A question that does not look like a follow-up, or has no earlier turns, is kept as it is.
    A generator with ``condense`` (the openai one) rewrites it; otherwise the rule folds.

    Raises:
        GenerationError: the LLM failed to condense (as it would fail to answer).
    """
    if not previous or not is_follow_up(question):
        return question
    condense = getattr(generator, "condense", None)
    if condense is not None:
        return condense(list(previous), question)
    return fold(previous, question)
