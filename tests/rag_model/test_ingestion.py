"""Tests for load_documents: folders of .txt/.md, JSONL files, skipped files and read errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag_model.documents import Document
from rag_model.errors import IngestionError
from rag_model.ingestion import load_documents


def test_folder_of_text_and_markdown_files(tmp_path: Path, make_files) -> None:
    root = make_files(
        tmp_path / "data",
        {
            "notes.txt": "Plain notes.\n",
            "guide/intro.md": "Some preamble.\n# Getting Started  \n\nBody text.\n# Second\n",
            "guide/deep/plain.md": "No heading here.\n",
        },
    )

    corpus = load_documents(root)

    assert corpus.documents == [
        Document(
            id="guide/deep/plain.md",
            text="No heading here.\n",
            metadata={"source": "guide/deep/plain.md", "title": "plain"},
        ),
        Document(
            id="guide/intro.md",
            text="Some preamble.\n# Getting Started  \n\nBody text.\n# Second\n",
            metadata={"source": "guide/intro.md", "title": "Getting Started"},
        ),
        Document(
            id="notes.txt",
            text="Plain notes.\n",
            metadata={"source": "notes.txt", "title": "notes"},
        ),
    ]
    assert corpus.skipped == []


def test_suffixes_are_matched_case_insensitively(tmp_path: Path, make_files) -> None:
    root = make_files(tmp_path / "data", {"LOUD.TXT": "Shouted text.\n"})

    assert [d.id for d in load_documents(root).documents] == ["LOUD.TXT"]


def test_a_single_markdown_file(tmp_path: Path, make_files) -> None:
    make_files(tmp_path, {"oxygen.md": "# Oxygen\nOxygen is an element.\n"})

    corpus = load_documents(tmp_path / "oxygen.md")

    assert [(d.id, dict(d.metadata)) for d in corpus.documents] == [
        ("oxygen.md", {"source": "oxygen.md", "title": "Oxygen"})
    ]


def test_jsonl_records_with_id_text_and_metadata(tmp_path: Path, make_files) -> None:
    make_files(
        tmp_path,
        {
            "corpus.jsonl": (
                '{"id": "ox", "text": "Oxygen is an element.", '
                '"metadata": {"title": "Oxygen", "year": 1774, "score": 0.5, "gas": true}}\n'
                "\n"
                '{"id": 7, "text": "Iron is a metal."}\n'
            )
        },
    )

    corpus = load_documents(tmp_path / "corpus.jsonl")

    assert corpus.documents == [
        Document(
            id="ox",
            text="Oxygen is an element.",
            metadata={
                "source": "corpus.jsonl",
                "title": "Oxygen",
                "year": 1774,
                "score": 0.5,
                "gas": True,
            },
        ),
        Document(id="7", text="Iron is a metal.", metadata={"source": "corpus.jsonl"}),
    ]


def test_jsonl_inside_a_folder_is_read_with_its_relative_source(tmp_path: Path, make_files) -> None:
    root = make_files(
        tmp_path / "data",
        {"sets/a.jsonl": '{"id": "x", "text": "Some text."}\n', "b.txt": "Other text.\n"},
    )

    corpus = load_documents(root)

    assert [(d.id, d.metadata["source"]) for d in corpus.documents] == [
        ("b.txt", "b.txt"),
        ("x", "sets/a.jsonl"),
    ]


def test_unsupported_hidden_and_empty_files_are_listed_as_skipped(
    tmp_path: Path, make_files
) -> None:
    root = make_files(
        tmp_path / "data",
        {
            "keep.txt": "Kept.\n",
            "image.png": b"\x89PNG",
            "README": "no suffix",
            ".secret.txt": "hidden text",
            ".git/notes.md": "hidden folder",
            "blank.txt": "  \n\t\n",
        },
    )

    corpus = load_documents(root)

    assert [d.id for d in corpus.documents] == ["keep.txt"]
    assert sorted(corpus.skipped) == [
        (".git/notes.md", "hidden file"),
        (".secret.txt", "hidden file"),
        ("README", "unsupported type (none)"),
        ("blank.txt", "no text"),
        ("image.png", "unsupported type .png"),
    ]


def test_invalid_utf8_names_the_file(tmp_path: Path, make_files) -> None:
    root = make_files(tmp_path / "data", {"good.txt": "Fine.\n", "bad.txt": b"caf\xe9 au lait\n"})

    with pytest.raises(IngestionError) as caught:
        load_documents(root)

    assert str(caught.value) == (
        f"cannot read {root / 'bad.txt'}: not valid UTF-8 text (byte 3); fix or remove the file"
    )


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        ("{not json", "data.jsonl line 3: invalid JSON (Expecting property name"),
        ('["x", "y"]', "data.jsonl line 3: expected an object with 'id' and 'text'"),
        (
            '{"text": "t"}',
            "data.jsonl line 3: 'id' (or BEIR '_id') must be a non-empty string or integer",
        ),
        (
            '{"id": true, "text": "t"}',
            "data.jsonl line 3: 'id' (or BEIR '_id') must be a non-empty string",
        ),
        (
            '{"id": "", "text": "t"}',
            "data.jsonl line 3: 'id' (or BEIR '_id') must be a non-empty string",
        ),
        ('{"id": "x"}', "data.jsonl line 3: 'text' must be a non-empty string"),
        ('{"id": "x", "text": "  "}', "data.jsonl line 3: 'text' must be a non-empty string"),
        (
            '{"id": "x", "text": "t", "metadata": ["a"]}',
            "data.jsonl line 3: 'metadata' must be an object",
        ),
        (
            '{"id": "x", "text": "t", "metadata": {"tags": ["a", "b"]}}',
            "data.jsonl line 3: metadata 'tags' must be a string, number or boolean, got list",
        ),
        (
            '{"id": "x", "text": "t", "metadata": {"author": null}}',
            "data.jsonl line 3: metadata 'author' must be a string, number or boolean, "
            "got NoneType",
        ),
    ],
)
def test_jsonl_errors_name_the_file_and_line(
    tmp_path: Path, make_files, bad_line: str, expected: str
) -> None:
    # line 2 is blank: line numbers count it
    make_files(tmp_path, {"data.jsonl": '{"id": "ok", "text": "Fine."}\n\n' + bad_line + "\n"})

    where = tmp_path / "data.jsonl"
    message = f"cannot read {where}: {expected.replace('data.jsonl line', 'line')}"
    with pytest.raises(IngestionError, match=re.escape(message)):
        load_documents(where)


def test_duplicate_ids_are_rejected_naming_both_sources(tmp_path: Path, make_files) -> None:
    root = make_files(
        tmp_path / "data",
        {
            "a.jsonl": '{"id": "doc-1", "text": "First."}\n',
            "b.jsonl": '{"id": "doc-1", "text": "Second."}\n',
        },
    )

    with pytest.raises(
        IngestionError,
        match=re.escape(
            "document id 'doc-1' appears twice (a.jsonl and b.jsonl); "
            "ids must be unique across the corpus"
        ),
    ):
        load_documents(root)


def test_a_jsonl_id_may_not_collide_with_a_file_path(tmp_path: Path, make_files) -> None:
    root = make_files(
        tmp_path / "data",
        {"notes.txt": "From the file.\n", "data.jsonl": '{"id": "notes.txt", "text": "Record."}\n'},
    )

    with pytest.raises(
        IngestionError,
        match=re.escape("document id 'notes.txt' appears twice (data.jsonl and notes.txt)"),
    ):
        load_documents(root)


def test_nonexistent_path_is_rejected(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"

    with pytest.raises(
        IngestionError,
        match=re.escape(f"data path {missing} does not exist; pass a folder or a .jsonl file"),
    ):
        load_documents(missing)


def test_an_empty_data_path_is_not_the_current_folder() -> None:
    with pytest.raises(
        IngestionError,
        match=re.escape("the data path is empty; pass a folder of documents or a .jsonl file"),
    ):
        load_documents(" ")


def test_a_data_file_of_an_unsupported_type_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "corpus.csv").write_text("id,text\n")

    with pytest.raises(IngestionError) as caught:
        load_documents(tmp_path / "corpus.csv")

    assert str(caught.value) == (
        f"data path {tmp_path / 'corpus.csv'}: unsupported type .csv; pass a folder or a .txt, "
        ".md, .html, .htm, .pdf, .jsonl file"
    )


def test_an_empty_data_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text("\n")

    with pytest.raises(IngestionError) as caught:
        load_documents(tmp_path / "corpus.jsonl")

    assert str(caught.value) == f"no documents found in {tmp_path / 'corpus.jsonl'}: no records"


def test_empty_folder_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(IngestionError) as caught:
        load_documents(tmp_path)

    assert (
        str(caught.value)
        == f"no documents found in {tmp_path}: expected .txt, .md, .html, .htm, .pdf, .jsonl files"
    )


def test_folder_with_only_skipped_files_says_how_many_were_skipped(
    tmp_path: Path, make_files
) -> None:
    make_files(tmp_path, {"a.png": b"x", "b.csv": "x,y\n", "empty.md": ""})

    with pytest.raises(IngestionError) as caught:
        load_documents(tmp_path)

    assert str(caught.value) == (
        f"no documents found in {tmp_path}: expected .txt, .md, .html, .htm, .pdf, .jsonl files "
        "(3 other file(s) skipped)"
    )


def test_all_failing_files_are_named_in_one_error(tmp_path: Path, make_files) -> None:
    root = make_files(
        tmp_path / "data",
        {
            "fine.md": "# Fine\nGood text.\n",
            "latin1.txt": b"\xff\xfe bad\n",
            "records.jsonl": '{"id": "a", "text": "ok"}\n{"id": "b"}\n',
        },
    )

    with pytest.raises(IngestionError) as caught:
        load_documents(root)

    assert str(caught.value) == (
        f"2 file(s) under {root} could not be read; fix or remove them:\n"
        "  latin1.txt: not valid UTF-8 text (byte 0)\n"
        "  records.jsonl line 2: 'text' must be a non-empty string"
    )
