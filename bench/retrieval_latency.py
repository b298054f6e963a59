"""Latency per question of retrieval configurations against today's default, interleaved.

Usage: python -m bench.retrieval_latency [--questions 100] [--repeats 3]
                                         [--cache .rag-model/bench-cache]
                                         [--corpus sample|squad|scifact] [--only LABELS]
Builds the sample corpus (data/sample, 233 chunks) or SQuAD v1.1 dev (2,904 chunks, 11,857
sentences: the sentence search is linear in the sentences, so a larger corpus shows its cost)
or SciFact (17,126 chunks, 60,593 sentences; its test queries) with the default config, then
answers each question with every configuration in turn
(A B C, A B C, ...; one onnxruntime and one BLAS thread, no query-vector cache), so that load
from other processes hits them alike. Prints
p50 / p95 of ``pipeline.answer`` per configuration and its p50 ratio to the default.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
import numpy as np

from bench.retrieval_data import (
    cached_embedder,
    load_scifact,
    load_squad,
    select_modes,
    shared_data,
)
from evaluation.dataset import load_eval_set
from rag_model.build import build_snapshot
from rag_model.config import RagConfig
from rag_model.pipeline import RagPipeline

PROJECT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "default (today: hybrid weighted)": {},
    "+ sentence 0.5 (depth 20)": {"retrieval.sentence_weight": 0.5},
    "parent: hybrid over sentences": {"retrieval.search_unit": "sentence"},
    "parent + sentence 0.5": {
        "retrieval.search_unit": "sentence",
        "retrieval.sentence_weight": 0.5,
    },
    "chunk + sentence signals (0.5)": {"retrieval.search_unit": "both"},
    "chunk + sentence signals (0.6)": {
        "retrieval.search_unit": "both",
        "retrieval.dense_weight": 0.6,
    },
}


@click.command()
@click.option("--questions", default=100, show_default=True)
@click.option("--repeats", default=3, show_default=True, help="passes over the questions")
@click.option("--cache", default=".rag-model/bench-cache", show_default=True)
@click.option(
    "--corpus",
    type=click.Choice(["sample", "squad", "scifact"]),
    default="sample",
    show_default=True,
)
@click.option(
    "--only", default="", help="configurations: label substrings or =LABEL (default kept)"
)
def main(questions: int, repeats: int, cache: str, corpus: str, only: str) -> None:
    """Print the interleaved latency table."""
    from threadpoolctl import threadpool_limits

    base = RagConfig.from_dict({"embedding": {"query_cache_size": 0}})
    with tempfile.TemporaryDirectory() as tmp:
        if corpus == "sample":
            examples = load_eval_set(PROJECT / "data/sample/eval.jsonl", limit=questions).examples
            texts = [e.question for e in examples]
            data_file, documents = PROJECT / "data/sample/corpus.jsonl", None
        elif corpus == "squad":
            squad = load_squad(shared_data("squad_v1.1/dev-v1.1.json"), Path(tmp))
            texts = list(dict.fromkeys(squad.queries.values()))[::10][:questions]
            data_file, documents = Path(tmp) / "squad-dev.jsonl", squad.corpus
        else:
            scifact = load_scifact(shared_data("scifact"))
            texts = list(scifact.queries.values())[:questions]
            data_file, documents = shared_data("scifact") / "corpus.jsonl", scifact.corpus
        built = build_snapshot(
            base,
            data_file,
            Path(tmp) / "s",
            embedder=cached_embedder(base, Path(cache), threads=2),
            corpus=documents,
        )
        default = next(iter(CONFIGS))
        configs = {default: {}, **select_modes(CONFIGS, only)}  # type: ignore[arg-type]
        pipelines = {
            label: RagPipeline.from_snapshot(
                base.with_overrides(overrides), built.snapshot_dir, threads=1
            )
            for label, overrides in configs.items()
        }
        times: dict[str, list[float]] = {label: [] for label in configs}
        with threadpool_limits(limits=1):
            for pipeline in pipelines.values():
                pipeline.warm_up()
                pipeline.answer("warm-up question")
            for _ in range(repeats):
                for question in texts:
                    for label, pipeline in pipelines.items():
                        started = time.perf_counter()
                        pipeline.answer(question)
                        times[label].append((time.perf_counter() - started) * 1000)
    base_p50 = float(np.median(times[default]))
    import os

    print(
        f"{corpus}: {built.chunk_count} chunks, {len(texts)} questions x {repeats} passes, "
        f"interleaved, 1 thread, no query cache; load average at the end "
        f"{os.getloadavg()[0]:.1f}\n"
    )
    print("| configuration | answer p50 ms | p95 ms | p50 x default |\n|---|---|---|---|")
    for label, values in times.items():
        p50, p95 = np.percentile(values, [50, 95])
        print(f"| {label} | {p50:.1f} | {p95:.1f} | {p50 / base_p50:.2f} |")


if __name__ == "__main__":
    main()
