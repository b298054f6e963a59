"""Context recall and precision as coverage, on quote-style and paragraph-style references."""

from __future__ import annotations

import math

import pytest

from evaluation.coverage import (
    chunk_is_relevant,
    context_precision,
    context_recall,
    coverage,
    covered_tokens,
    tokens,
)

HASTINGS = (
    "The Battle of Hastings was fought on 14 October 1066 between the Norman-French army of "
    "William, the Duke of Normandy, and an English army under the Anglo-Saxon King Harold "
    "Godwinson. It took place approximately 7 mi northwest of Hastings, close to the present-day "
    "town of Battle, East Sussex, and was a decisive Norman victory."
)
STEAM = (
    "A steam engine is a heat engine that performs mechanical work using steam as its working "
    "fluid. The steam engine uses the force produced by steam pressure to push a piston back "
    "and forth inside a cylinder."
)
OXYGEN = (
    "Oxygen is a chemical element with symbol O and atomic number 8. It is a member of the "
    "chalcogen group on the periodic table, a highly reactive nonmetal, and an oxidizing agent."
)

# quote-style references: one sentence of a long retrieved chunk
QUOTES = [
    (["It took place approximately 7 mi northwest of Hastings."], [HASTINGS, STEAM], 1.0, 0.5),
    (["The steam engine uses the force produced by steam pressure."], [OXYGEN, STEAM], 1.0, 0.5),
    (["Oxygen is a chemical element with symbol O."], [HASTINGS, STEAM], 0.0, 0.0),
]


@pytest.mark.parametrize(("references", "retrieved", "recall", "precision"), QUOTES)
def test_a_quote_inside_a_retrieved_chunk_is_recalled_whole(
    references: list[str], retrieved: list[str], recall: float, precision: float
) -> None:
    assert context_recall(references, retrieved) == recall
    assert context_precision(references, retrieved) == precision


def test_a_paragraph_split_over_chunks_is_covered_by_the_chunks_together() -> None:
    words = HASTINGS.split()
    first, second = " ".join(words[:25]), " ".join(words[22:])  # overlapping chunks
    assert context_recall([HASTINGS], [first]) == pytest.approx(25 / len(tokens(HASTINGS)), 0.1)
    assert context_recall([HASTINGS], [first, second]) == 1.0
    # each chunk lies inside the reference: both are relevant, the unrelated one is not
    assert context_precision([HASTINGS], [first, STEAM, second]) == pytest.approx(2 / 3)


def test_paragraph_references_on_whole_paragraph_chunks() -> None:
    assert context_recall([HASTINGS, STEAM], [STEAM, OXYGEN]) == pytest.approx(
        len(tokens(STEAM)) / (len(tokens(HASTINGS)) + len(tokens(STEAM)))
    )
    assert context_precision([HASTINGS, STEAM], [STEAM, OXYGEN]) == 0.5


def test_shared_words_out_of_order_cover_nothing() -> None:
    scrambled = "Hastings battle the of 1066 October army Norman William duke"
    reference = tokens("the battle of Hastings in October 1066")
    assert covered_tokens(reference, [tokens(scrambled)]) == 0
    assert not chunk_is_relevant(tokens(scrambled), [tokens(HASTINGS)])


def test_case_punctuation_and_short_references() -> None:
    assert coverage(tokens("BATTLE, of -- Hastings!"), [tokens(HASTINGS)]) == 1.0
    assert coverage(tokens("Harold"), [tokens(HASTINGS)]) == 1.0  # shorter than a run: whole
    assert coverage(tokens("Harold Wilson"), [tokens(HASTINGS)]) == 0.0
    assert coverage([], [tokens(HASTINGS)]) == 0.0


def test_nothing_to_compare_is_not_a_score() -> None:
    assert math.isnan(context_recall([], [HASTINGS]))
    assert math.isnan(context_recall([HASTINGS], []))
    assert math.isnan(context_precision(["", "  "], [HASTINGS]))
