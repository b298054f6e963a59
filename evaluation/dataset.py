"""Eval sets as JSONL: ``question``, optional ``reference_answers`` and ``relevant_ids``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rag_model.errors import RagError


class EvalSetError(RagError):
    """An eval set file is missing, malformed or empty."""


@dataclass(frozen=True)
class EvalExample:
    """One question with what a good answer and a good retrieval look like."""

    id: str
    question: str
    reference_answers: list[str] = field(default_factory=list)
    relevant_ids: list[str] = field(default_factory=list)  # document ids


def load_eval_set(path: str | Path) -> list[EvalExample]:
    """Read a JSONL eval set; every malformed line is reported with its number.

    Raises:
        EvalSetError: the file is missing or unreadable, a line is malformed, or it is empty.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalSetError(f"cannot read eval set {path}: {exc}") from None
    examples, problems = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            examples.append(_parse(json.loads(line), number))
        except (json.JSONDecodeError, ValueError) as exc:
            problems.append(f"line {number}: {exc}")
    if problems:
        raise EvalSetError(
            f"eval set {path} has {len(problems)} bad line(s): " + "; ".join(problems[:5])
        )
    if not examples:
        raise EvalSetError(f"eval set {path} has no questions; one JSON object per line expected")
    return examples


def _parse(record: object, number: int) -> EvalExample:
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("'question' must be a non-empty string")
    answers = record.get("reference_answers", [])
    relevant = record.get("relevant_ids", [])
    for name, value in (("reference_answers", answers), ("relevant_ids", relevant)):
        if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
            raise ValueError(f"'{name}' must be a list of strings")
    return EvalExample(
        id=str(record.get("id", number)),
        question=question.strip(),
        reference_answers=[str(a) for a in answers],
        relevant_ids=[str(r) for r in relevant],
    )
