"""Eval sets in three formats (JSONL, SQuAD JSON, BEIR folder) and their error messages."""

import json
from pathlib import Path

import pytest

from evaluation.dataset import EvalExample, EvalSet, EvalSetError, check_overlap, load_eval_set
from tests.conftest import SAMPLE_CORPUS, SAMPLE_EVAL


def test_sample_eval_set_points_at_sample_documents() -> None:
    eval_set = load_eval_set(SAMPLE_EVAL)
    corpus = {json.loads(line)["id"]: json.loads(line)["text"] for line in SAMPLE_CORPUS.open()}
    assert eval_set.format == "jsonl" and len(eval_set.examples) == 178
    for example in eval_set.examples:
        assert example.reference_answers and set(example.relevant_ids) <= set(corpus)
        assert example.reference_contexts == [corpus[example.relevant_ids[0]]]


def test_jsonl_accepts_a_single_reference_answer_and_contexts(tmp_path: Path) -> None:
    path = tmp_path / "eval.jsonl"
    lines = [
        {"question": " Who? ", "reference_answer": "Ada", "reference_contexts": ["Ada wrote"]},
        {"id": "q2", "question": "When?", "reference_answers": ["1843", 1843]},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    first, second = load_eval_set(path).examples
    assert (first.id, first.question, first.reference_answers) == ("1", "Who?", ["Ada"])
    assert first.reference_contexts == ["Ada wrote"] and first.relevant_ids == []
    assert second.id == "q2" and second.reference_answers == ["1843"]


def test_squad_json(tmp_path: Path) -> None:
    squad = {
        "data": [
            {
                "title": "Normans",
                "paragraphs": [
                    {"context": "c0", "qas": []},
                    {
                        "context": "The Normans were in France.",
                        "qas": [
                            {
                                "id": "x1",
                                "question": "Where?",
                                "answers": [{"text": "France"}, {"text": "France"}],
                            }
                        ],
                    },
                ],
            }
        ]
    }
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(squad))
    eval_set = load_eval_set(path)
    (example,) = eval_set.examples
    assert eval_set.format == "squad"
    assert example.relevant_ids == ["Normans-001"]  # the id scheme of data/make_sample.py
    assert example.reference_answers == ["France"]
    assert example.reference_contexts == ["The Normans were in France."]


def test_beir_folder_keeps_the_split_and_reads_contexts(tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "queries.jsonl").write_text(
        '{"_id": "1", "text": "q one"}\n{"_id": "2", "text": "q two"}\n'
    )
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": "d1", "title": "T", "text": "body"}\n{"_id": "d2", "title": "", "text": "x"}\n'
    )
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t1\n")
    (tmp_path / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n2\td2\t1\n")
    (example,) = load_eval_set(tmp_path).examples
    assert (example.id, example.question, example.relevant_ids) == ("1", "q one", ["d1"])
    assert example.reference_contexts == ["T body"]
    assert [e.id for e in load_eval_set(tmp_path, split="train").examples] == ["2"]
    with pytest.raises(EvalSetError, match=r"lacks qrels/dev.tsv.*--split"):
        load_eval_set(tmp_path, split="dev")


def test_limit_keeps_the_first_questions() -> None:
    assert len(load_eval_set(SAMPLE_EVAL, limit=5).examples) == 5


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"question": "q"}\nnot json\n', "line 2: Expecting value"),
        ('{"question": ""}\n', "line 1: 'question' must be a non-empty string"),
        ('{"question": "q", "relevant_ids": "a"}\n', "'relevant_ids' must be a list of strings"),
        ('{"question": "q", "reference_answer": 3}\n', "'reference_answer' must be a string"),
        ("[1]\n", "line 1: expected a JSON object"),
        ("\n\n", "has no questions"),
    ],
)
def test_bad_jsonl_is_refused_with_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "eval.jsonl"
    path.write_text(content)
    with pytest.raises(EvalSetError, match=message):
        load_eval_set(path)


def test_missing_unsupported_and_non_squad_files(tmp_path: Path) -> None:
    with pytest.raises(EvalSetError, match="missing.jsonl does not exist; pass a .jsonl"):
        load_eval_set(tmp_path / "missing.jsonl")
    (tmp_path / "eval.csv").write_text("question\n")
    with pytest.raises(EvalSetError, match="unsupported type .csv"):
        load_eval_set(tmp_path / "eval.csv")
    (tmp_path / "other.json").write_text("[1, 2]")
    with pytest.raises(EvalSetError, match="is not SQuAD JSON"):
        load_eval_set(tmp_path / "other.json")


def _eval_set(*relevant: list[str]) -> EvalSet:
    examples = [EvalExample(str(i), f"q{i}?", relevant_ids=ids) for i, ids in enumerate(relevant)]
    return EvalSet("eval.jsonl", "/data/eval.jsonl", "jsonl", examples)


def test_an_eval_set_sharing_no_id_with_the_corpus_is_refused() -> None:
    with pytest.raises(EvalSetError) as caught:
        check_overlap(_eval_set(["x-1"], ["x-2", "x-1"]), {"a", "b"}, "/data/corpus.jsonl")

    assert str(caught.value) == (
        "eval set /data/eval.jsonl shares no document id with the corpus /data/corpus.jsonl: "
        "its 2 relevant id(s) (e.g. 'x-1', 'x-2') match none of the corpus's 2 document id(s) "
        "(e.g. 'a', 'b'); use the eval set made for this corpus, or make its relevant_ids name "
        "the corpus's document ids"
    )


def test_some_overlap_or_no_relevant_ids_pass_the_check() -> None:
    check_overlap(_eval_set(["x-1"], ["a"]), {"a", "b"}, "corpus")
    check_overlap(_eval_set([], []), {"a"}, "corpus")  # answers only: nothing to compare
