"""Eval sets: what a good answer and a good retrieval look like for each question.

Three formats, chosen by the path:
- a folder with ``queries.jsonl`` and ``qrels/<split>.tsv``: BEIR (``corpus.jsonl`` beside
  them gives the reference contexts);
- a ``.json`` file: SQuAD v1.1 (paragraph ids are ``<title>-<NNN>``, as in ``data/sample``);
- a ``.jsonl`` file: one ``{"question", "reference_answer"?, "reference_answers"?,
  "relevant_ids"?, "reference_contexts"?, "id"?}`` object per line.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag_model.errors import RagError


class EvalSetError(RagError):
    """An eval set file is missing, malformed or empty."""


@dataclass(frozen=True)
class EvalExample:
    """One question with its reference answers, relevant document ids and reference contexts."""

    id: str
    question: str
    reference_answers: list[str] = field(default_factory=list)
    relevant_ids: list[str] = field(default_factory=list)  # document ids
    reference_contexts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EvalSet:
    """The examples read from ``source`` and the format they were read as."""

    name: str
    source: str
    format: str  # jsonl | beir | squad
    examples: list[EvalExample]

    def records(self) -> list[dict[str, Any]]:
        """One flat dict per example (lists as JSON strings), e.g. for ``mlflow.data``."""
        return [
            {
                key: json.dumps(value) if isinstance(value, list) else value
                for key, value in example.__dict__.items()
            }
            for example in self.examples
        ]


def load_eval_set(path: str | Path, split: str = "test", limit: int | None = None) -> EvalSet:
    """Read an eval set in any supported format (see the module docstring).

    Args:
        path: a BEIR folder, a SQuAD ``.json`` or a ``.jsonl`` file.
        split: the BEIR qrels split (``qrels/<split>.tsv``).
        limit: keep only the first ``limit`` questions (None: all).

    Raises:
        EvalSetError: the path is missing, of an unknown kind, malformed, or has no questions.
    """
    path = Path(path)
    if not path.exists():
        raise EvalSetError(
            f"eval set {path} does not exist; pass a .jsonl file, a SQuAD .json file or a BEIR "
            "folder (queries.jsonl + qrels/)"
        )
    if path.is_dir():
        examples, kind = _read_beir(path, split), "beir"
    elif path.suffix.lower() == ".json":
        examples, kind = _read_squad(path), "squad"
    elif path.suffix.lower() == ".jsonl":
        examples, kind = _read_jsonl(path), "jsonl"
    else:
        raise EvalSetError(
            f"eval set {path}: unsupported type {path.suffix or '(none)'}; use .jsonl, a SQuAD "
            ".json file or a BEIR folder"
        )
    if not examples:
        raise EvalSetError(
            f"eval set {path} has no questions; add at least one (see docs/evaluation.md)"
        )
    if limit is not None:
        examples = examples[:limit]
    return EvalSet(name=path.name, source=str(path.resolve()), format=kind, examples=examples)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EvalSetError(f"cannot read eval set file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise EvalSetError(
            f"eval set file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None


def _json_lines(path: Path) -> list[tuple[int, Any]]:
    records, problems = [], []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: {exc}")
    _raise_problems(path, problems)
    return records


def _raise_problems(path: Path, problems: list[str]) -> None:
    if problems:
        raise EvalSetError(
            f"eval set {path} has {len(problems)} bad line(s): " + "; ".join(problems[:5])
        )


def _read_jsonl(path: Path) -> list[EvalExample]:
    examples, problems = [], []
    for number, record in _json_lines(path):
        try:
            examples.append(_parse_jsonl_record(record, number))
        except ValueError as exc:
            problems.append(f"line {number}: {exc}")
    _raise_problems(path, problems)
    return examples


def _parse_jsonl_record(record: object, number: int) -> EvalExample:
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("'question' must be a non-empty string")
    single = record.get("reference_answer")
    if single is not None and not isinstance(single, str):
        raise ValueError("'reference_answer' must be a string")
    answers = _string_list(record, "reference_answers") + ([single] if single else [])
    return EvalExample(
        id=str(record.get("id", number)),
        question=question.strip(),
        reference_answers=list(dict.fromkeys(answers)),
        relevant_ids=_string_list(record, "relevant_ids"),
        reference_contexts=_string_list(record, "reference_contexts"),
    )


def _string_list(record: dict[str, Any], name: str) -> list[str]:
    value = record.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise ValueError(f"'{name}' must be a list of strings")
    return [str(v) for v in value]


def _read_squad(path: Path) -> list[EvalExample]:
    try:
        articles = json.loads(_read_text(path))["data"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise EvalSetError(
            f"eval set {path} is not SQuAD JSON (expected {{'data': [articles]}}): {exc}"
        ) from None
    examples = []
    for article in articles:
        for number, paragraph in enumerate(article["paragraphs"]):
            doc_id = f"{article['title']}-{number:03d}"
            for qa in paragraph["qas"]:
                examples.append(
                    EvalExample(
                        id=str(qa["id"]),
                        question=qa["question"].strip(),
                        reference_answers=list(dict.fromkeys(a["text"] for a in qa["answers"])),
                        relevant_ids=[doc_id],
                        reference_contexts=[paragraph["context"]],
                    )
                )
    return examples


def _read_beir(folder: Path, split: str) -> list[EvalExample]:
    queries_file, qrels_file = folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv"
    for needed in (queries_file, qrels_file):
        if not needed.is_file():
            raise EvalSetError(
                f"BEIR eval set {folder} lacks {needed.relative_to(folder)}; a BEIR folder has "
                "queries.jsonl and qrels/<split>.tsv (choose the split with --split)"
            )
    relevant: dict[str, list[str]] = {}
    for line in _read_text(qrels_file).splitlines()[1:]:  # header: query-id corpus-id score
        parts = line.split("\t")
        if len(parts) >= 3 and parts[2].strip() not in ("", "0"):
            relevant.setdefault(parts[0], []).append(parts[1])
    texts = _beir_texts(folder / "corpus.jsonl", {d for ids in relevant.values() for d in ids})
    examples = []
    for _, query in _json_lines(queries_file):
        ids = relevant.get(str(query.get("_id")))
        if ids:  # BEIR ships queries of every split in one file: keep this split's
            examples.append(
                EvalExample(
                    id=str(query["_id"]),
                    question=str(query["text"]).strip(),
                    relevant_ids=ids,
                    reference_contexts=[texts[d] for d in ids if d in texts],
                )
            )
    return examples


def _beir_texts(corpus: Path, wanted: set[str]) -> dict[str, str]:
    if not corpus.is_file():
        return {}
    texts = {}
    for _, doc in _json_lines(corpus):
        if str(doc.get("_id")) in wanted:
            texts[str(doc["_id"])] = " ".join(filter(None, (doc.get("title"), doc.get("text"))))
    return texts


def check_overlap(eval_set: EvalSet, document_ids: Collection[str], corpus: str) -> None:
    """Refuse an eval set whose relevant ids name none of the corpus's documents.

    Retrieval metrics of such a pair are all 0 whatever the model does: the eval set was made
    for another corpus, or its ids are spelled differently. Checked before any embedding. An
    eval set without relevant ids (answers only) has nothing to check.

    Raises:
        EvalSetError: with both counts and a few ids of each side.
    """
    wanted = list(dict.fromkeys(i for example in eval_set.examples for i in example.relevant_ids))
    if not wanted or not set(wanted).isdisjoint(document_ids):
        return
    known = sorted(document_ids)
    raise EvalSetError(
        f"eval set {eval_set.source} shares no document id with the corpus {corpus}: its "
        f"{len(wanted)} relevant id(s) ({_examples(wanted)}) match none of the corpus's "
        f"{len(known)} document id(s) ({_examples(known)}); use the eval set made for this "
        "corpus, or make its relevant_ids name the corpus's document ids"
    )


def _examples(ids: list[str], count: int = 3) -> str:
    shown = ", ".join(repr(i) for i in ids[:count])
    return f"e.g. {shown}" + (", ..." if len(ids) > count else "")
