"""Tests for the generators: sentence splitting, the extractive answerer, the echo fake."""

from __future__ import annotations

import pytest

from rag_model.config import GenerationConfig
from rag_model.documents import RetrievedChunk
from rag_model.embedders import HashEmbedder
from rag_model.generation import Generation
from rag_model.generators import NO_ANSWER, EchoGenerator, ExtractiveGenerator, make_generator
from rag_model.sentences import split_sentences


def _chunk(identifier: str, text: str, score: float = 0.5) -> RetrievedChunk:
    return RetrievedChunk(id=identifier, document_id=f"{identifier}.txt", text=text, score=score)


CONTEXTS = [
    _chunk("c-oxygen", "Oxygen is a gas. Iron is a metal that rusts."),
    _chunk("c-bridge", "The weather was fine that year. Brunel built the bridge in 1864."),
    _chunk("c-violin", "The violin has four strings."),
]


def test_split_sentences_on_terminal_punctuation() -> None:
    text = "Brunel built the bridge in 1864. It opened to traffic! Was it busy? Yes, 3 carts a day."

    assert split_sentences(text) == [
        "Brunel built the bridge in 1864.",
        "It opened to traffic!",
        "Was it busy?",
        "Yes, 3 carts a day.",
    ]


def test_split_sentences_splits_lines_and_keeps_lowercase_continuations() -> None:
    text = "Version 2.5 of the tool, e.g. the new one, is out.  \n\nNext line here."

    assert split_sentences(text) == [
        "Version 2.5 of the tool, e.g. the new one, is out.",
        "Next line here.",
    ]


def test_split_sentences_drops_blank_and_single_character_pieces() -> None:
    assert split_sentences("  \n.\nA real sentence.\n") == ["A real sentence."]
    assert split_sentences("") == []


def test_extractive_answer_is_the_sentence_sharing_words_with_the_question() -> None:
    generator = ExtractiveGenerator(HashEmbedder(), max_sentences=1)

    generation = generator.generate("Who built the bridge?", CONTEXTS)

    assert (generation.text, generation.citations) == (
        "Brunel built the bridge in 1864. [2]",
        ["c-bridge"],
    )
    assert 0 < generation.confidence <= 1  # the chosen sentence's similarity to the question


def test_extractive_answer_keeps_the_reading_order_of_the_sources() -> None:
    generator = ExtractiveGenerator(HashEmbedder(), max_sentences=2)

    # the violin sentence (rank 3) matches best, the oxygen one (rank 1) second
    generation = generator.generate("violin four strings oxygen", CONTEXTS)

    assert generation.text == "Oxygen is a gas. [1] The violin has four strings. [3]"
    assert generation.citations == ["c-oxygen", "c-violin"]


def test_extractive_answer_cites_a_chunk_once_for_several_sentences() -> None:
    contexts = [_chunk("c-1", "Brunel built the bridge. The bridge spans the gorge. Cats sleep.")]
    generator = ExtractiveGenerator(HashEmbedder(), max_sentences=2)

    generation = generator.generate("bridge gorge brunel built spans", contexts)

    assert generation.text == "Brunel built the bridge. [1] The bridge spans the gorge. [1]"
    assert generation.citations == ["c-1"]


@pytest.mark.parametrize("contexts", [[], [_chunk("c-empty", "")], [_chunk("c-dot", " . ")]])
def test_extractive_without_sentences_gives_no_answer(contexts: list[RetrievedChunk]) -> None:
    generation = ExtractiveGenerator(HashEmbedder()).generate("Who built the bridge?", contexts)

    assert generation == Generation(NO_ANSWER, [])


def test_echo_gives_the_first_sentence_of_the_best_chunk() -> None:
    generation = EchoGenerator().generate("anything", CONTEXTS)

    assert generation == Generation("Oxygen is a gas. [1]", ["c-oxygen"])


def test_echo_without_contexts_gives_no_answer() -> None:
    assert EchoGenerator().generate("anything", []) == Generation(NO_ANSWER, [])


def test_make_generator_builds_what_the_config_names() -> None:
    embedder = HashEmbedder()

    extractive = make_generator(GenerationConfig(max_sentences=3), embedder)
    echo = make_generator(GenerationConfig(generator="echo"), embedder)

    assert isinstance(extractive, ExtractiveGenerator)
    assert extractive.max_sentences == 3
    assert extractive.embedder is embedder
    assert isinstance(echo, EchoGenerator)
