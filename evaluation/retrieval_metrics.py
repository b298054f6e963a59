"""Document-level retrieval metrics computed with ranx: hit rate, recall, MRR, nDCG, MAP.

Chunks are mapped to their documents first (a document ranks where its best chunk ranks), so the
figures compare with BEIR and MTEB results, which score documents.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NDCG_AT = 10
CURVE_DEPTH = 10  # recall@1..10 for the report's recall curve


@dataclass(frozen=True)
class RetrievalScores:
    """Mean metrics (MLflow names), per-question values, and the recall@n curve."""

    means: dict[str, float]
    per_question: list[dict[str, float]]  # NaN for questions without relevant ids
    recall_curve: dict[int, float]


def ranked_documents(document_ids: Sequence[str]) -> list[str]:
    """Document ids in the order their first chunk was retrieved, each once."""
    return list(dict.fromkeys(document_ids))


def retrieval_metric_names(k: int) -> dict[str, str]:
    """The ranx metric -> MLflow metric name, for a model that answers with ``k`` chunks."""
    return {
        f"hit_rate@{k}": f"hit_rate_at_{k}",
        f"recall@{k}": f"recall_at_{k}",
        f"mrr@{k}": f"mrr_at_{k}",
        f"ndcg@{NDCG_AT}": f"ndcg_at_{NDCG_AT}",
        f"map@{NDCG_AT}": f"map_at_{NDCG_AT}",
    }


def retrieval_scores(
    rankings: Sequence[Sequence[str]], relevant: Sequence[Sequence[str]], k: int
) -> RetrievalScores:
    """Score ranked document ids against the relevant ids of each question.

    Args:
        rankings: per question, document ids best first (at least ``max(k, 10)`` deep for
            nDCG@10 and MAP@10 to mean what they say).
        relevant: per question, the relevant document ids (empty: not scored).
        k: the cut-off of hit rate, recall and MRR (the model's own k).

    Returns:
        ``hit_rate_at_{k}``, ``recall_at_{k}``, ``mrr_at_{k}``, ``ndcg_at_10``, ``map_at_10``.
    """
    names = retrieval_metric_names(k)
    curve = {f"recall@{n}": n for n in range(1, CURVE_DEPTH + 1)}
    scored = [i for i, rel in enumerate(relevant) if rel]
    per_question: list[dict[str, float]] = [
        {name: float("nan") for name in names.values()} for _ in rankings
    ]
    if not scored:
        nan = float("nan")
        return RetrievalScores({n: nan for n in names.values()}, per_question, {})
    values = _ranx([rankings[i] for i in scored], [relevant[i] for i in scored], [*names, *curve])
    for position, index in enumerate(scored):
        per_question[index] = {
            mlflow_name: float(values[metric][position]) for metric, mlflow_name in names.items()
        }
    means = {name: float(np.mean(values[metric])) for metric, name in names.items()}
    return RetrievalScores(
        means, per_question, {n: float(np.mean(values[m])) for m, n in curve.items()}
    )


def _ranx(
    rankings: Sequence[Sequence[str]], relevant: Sequence[Sequence[str]], metrics: list[str]
) -> dict[str, np.ndarray]:
    from ranx import Qrels, Run, evaluate

    # query ids are positions (ids in user files need not be unique), zero-padded because ranx
    # returns per-query values in sorted id order: "10" would sort before "2"
    qrels = Qrels({f"{i:09d}": {doc: 1 for doc in rel} for i, rel in enumerate(relevant)})
    # ranx reads scores, not ranks: a strictly decreasing score per rank keeps our order
    run = Run(
        {
            f"{i:09d}": {doc: float(len(ranked) - rank) for rank, doc in enumerate(ranked)}
            or {"": 0.0}  # ranx refuses an empty ranking; "" never matches a relevant id
            for i, ranked in enumerate(ranked_documents(r) for r in rankings)
        }
    )
    with warnings.catch_warnings():
        # numba warns about a uint64 -> int64 cast inside ranx's hit rate; harmless at our sizes
        warnings.filterwarnings("ignore", ".*unsafe cast from uint64 to int64")
        values = evaluate(qrels, run, metrics, return_mean=False, make_comparable=True)
    return {metric: np.atleast_1d(values[metric]) for metric in metrics}
