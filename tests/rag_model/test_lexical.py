"""Bm25Index ranks chunks as bm25s's own ``retrieve`` does, only faster.

The library's top-k leaves the order of equal scores to ``np.argpartition``; the index breaks
ties by chunk position. So rankings are compared as scores in order, and every chunk returned
must have the score the library gives it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag_model.documents import Chunk
from rag_model.lexical import Bm25Index, _bm25s, _tokenize

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "corpus.jsonl"


def library_ranking(index: Bm25Index, text: str, k: int, mask: np.ndarray | None):
    """What ``BM25.retrieve`` returns for ``text`` (the code the index used before)."""
    documents, scores = index._retriever.retrieve(
        _tokenize([text]), k=k, show_progress=False, weight_mask=mask
    )
    return [
        (index.ids[int(d)], float(s)) for d, s in zip(documents[0], scores[0], strict=True) if s > 0
    ]


def assert_same_ranking(index: Bm25Index, got, text: str, k: int, mask=None) -> None:
    """``got`` ranks like the library: same scores in order, each chunk at its true score."""
    library = library_ranking(index, text, k, mask)
    assert [score for _, score in got] == [score for _, score in library]
    truth = library_ranking(index, text, len(index.ids), mask)
    every = dict(truth)
    assert all(every[chunk] == score for chunk, score in got)
    scores = [score for _, score in got]
    assert scores == sorted(scores, reverse=True)
    for a, b in zip(got, got[1:], strict=False):  # equal scores in chunk order
        if a[1] == b[1]:
            assert index.ids.index(a[0]) < index.ids.index(b[0]), got


def random_corpus(rng: np.random.Generator, size: int) -> list[Chunk]:
    words = [f"word{n}" for n in range(60)]  # few words: many ties and long postings
    texts = [" ".join(rng.choice(words, rng.integers(3, 40))) for _ in range(size)]
    return [Chunk(id=f"c{i}", document_id=f"d{i}", text=text) for i, text in enumerate(texts)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_and_rankings_equal_the_librarys_on_random_corpora(tmp_path, seed):
    rng = np.random.default_rng(seed)
    chunks = random_corpus(rng, 400)
    Bm25Index.build(chunks, tmp_path / "bm25")
    index = Bm25Index.open(tmp_path / "bm25")
    for n in range(40):
        query = " ".join(rng.choice([f"word{m}" for m in range(70)], rng.integers(1, 6)))
        if n % 7 == 0:
            query += " " + query.split()[0]  # a repeated word counts twice in both
        tokens = _tokenize([query])
        if not tokens.vocab:
            continue
        words = _bm25s().tokenization.convert_tokenized_to_string_list(tokens)[0]
        library = index._retriever.get_scores(words)
        assert np.array_equal(index.scores(tokens), library)  # the same floats, bit for bit
        if n % 3 == 0:
            mask = (rng.random(len(chunks)) < 0.3).astype(np.float32)
            allowed = {chunks[i].id for i in np.flatnonzero(mask)}
            got = index.query(query, k=10, allowed_ids=allowed)
            assert_same_ranking(index, got, query, 10, mask)
            assert {chunk for chunk, _ in got} <= allowed
        for k in (1, 4, 10, len(chunks)):
            assert_same_ranking(index, index.query(query, k=k), query, k)


def test_rankings_equal_the_librarys_on_the_sample_corpus(tmp_path):
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    chunks = [Chunk(id=str(i), document_id=str(i), text=row["text"]) for i, row in enumerate(rows)]
    Bm25Index.build(chunks, tmp_path / "bm25")
    index = Bm25Index.open(tmp_path / "bm25")
    queries = [row["text"].split(".")[0][:80] for row in rows[::7]]
    queries += ["the of and", "zzzz unknownword", "Norman conquest of England"]
    for query in queries:
        assert_same_ranking(index, index.query(query, k=5), query, 5)
    assert index.query("the of and", k=5) == []  # only stopwords
    assert index.query("zzzz unknownword", k=5) == []  # words no chunk has
