"""The follow-up rule and the standalone question chat retrieves with (rag_model/followup.py)."""

from __future__ import annotations

import pytest

from rag_model.followup import fold, is_follow_up, standalone


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("When did he die?", True),
        ("What did they export?", True),
        ("Which treaty established it?", True),
        ("And what language did they take up?", True),
        ("what about Norway?", True),
        ("When did Rollo die?", False),
        ("What is the atomic number of oxygen?", False),
        ("Where did the Black Death originate?", False),
    ],
)
def test_is_follow_up(question: str, expected: bool) -> None:
    assert is_follow_up(question) is expected


def test_fold_puts_the_previous_turns_first() -> None:
    assert fold(["Who was Rollo?", "Where did he live?"], "When did he die?") == (
        "Where did he live? When did he die?"
    )
    assert fold(["a", "b"], "c", turns=2) == "a b c"


class Condenser:
    def condense(self, previous: list[str], question: str) -> str:
        return f"{question} (about {previous[-1]})"


def test_standalone_condenses_with_an_llm_and_folds_without() -> None:
    assert standalone("When did he die?", ["Who was Rollo?"]) == "Who was Rollo? When did he die?"
    assert standalone("When did he die?", ["Who was Rollo?"], Condenser()) == (
        "When did he die? (about Who was Rollo?)"
    )
    assert standalone("When did Rollo die?", ["Who was Rollo?"], Condenser()) == (
        "When did Rollo die?"
    )
    assert standalone("When did he die?", []) == "When did he die?"
