"""Incremental builds on SciFact: a cold build, then rebuilds after 1% of documents changed.

Usage: python -m bench.incremental [--data ../shared/data/scifact] [--cache FILE]
                                   [--sentence-vectors/--no-sentence-vectors]

Reads SciFact's 5,183 documents from ../shared (CC BY-NC: read in place, never copied; the
changed corpora are made in memory), builds them cold into a private embedding cache (a new
file unless ``--cache`` names one), then rebuilds four changed corpora with the same cache:
1% of documents edited (a sentence appended), 1% added (new documents), 1% removed, and all
three at once. Prints build seconds and chunks embedded/reused per build, the rebuild time as a
share of the cold build, and whether the documents table diff names exactly the changed ids.
Every build goes through ``rag_model.build.build_snapshot`` with the default config (onnx
MiniLM); sentence vectors are off by default (they multiply the cold build's time on 2 cores).
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import click

from rag_model.build import build_snapshot
from rag_model.config import RagConfig
from rag_model.corpus_table import compare_tables, read_documents_table
from rag_model.documents import Document
from rag_model.ingestion import Corpus, load_documents

SHARE = 0.01
SEED = 16


def variants(documents: list[Document]) -> dict[str, tuple[list[Document], dict[str, set]]]:
    """The changed corpora and, for each, the ids the diff must report."""
    rng = random.Random(SEED)
    count = max(1, round(len(documents) * SHARE))
    picked = rng.sample(range(len(documents)), 2 * count)
    edit, remove = set(picked[:count]), set(picked[count:])
    edited = [
        replace(doc, text=doc.text + " This passage was revised for the benchmark.")
        if i in edit
        else doc
        for i, doc in enumerate(documents)
    ]
    new = [
        Document(f"bench-added-{n}", f"Added note {n}. " + documents[i].text[::-1], {})
        for n, i in enumerate(rng.sample(range(len(documents)), count))
    ]
    kept = [doc for i, doc in enumerate(documents) if i not in remove]
    all_three = [doc for i, doc in enumerate(edited) if i not in remove] + new
    ids = {
        "edit": {documents[i].id for i in edit},
        "add": {doc.id for doc in new},
        "remove": {documents[i].id for i in remove},
    }
    none: set[str] = set()
    return {
        "1% edited": (edited, {"changed": ids["edit"], "added": none, "removed": none}),
        "1% added": (documents + new, {"changed": none, "added": ids["add"], "removed": none}),
        "1% removed": (kept, {"changed": none, "added": none, "removed": ids["remove"]}),
        "all three": (
            all_three,
            {"changed": ids["edit"], "added": ids["add"], "removed": ids["remove"]},
        ),
    }


@click.command()
@click.option("--data", default="../shared/data/scifact", show_default=True)
@click.option("--cache", default="", help="Embedding cache file [a new private one].")
@click.option("--sentence-vectors/--no-sentence-vectors", default=False, show_default=True)
@click.option("--quiet", is_flag=True)
def main(data: str, cache: str, sentence_vectors: bool, quiet: bool) -> None:
    """Print the incremental build table."""
    config = RagConfig.from_dict({"index": {"sentence_vectors": sentence_vectors}})
    work = Path(tempfile.mkdtemp(prefix="rag-model-incremental-"))
    cache_file = Path(cache) if cache else work / "embeddings.sqlite3"
    base = load_documents(Path(data) / "corpus.jsonl")
    print(f"load average at start: {os.getloadavg()}", flush=True)

    def build(name: str, documents: list[Document], cache_copy: Path):  # noqa: ANN202
        started = time.perf_counter()
        result = build_snapshot(
            config,
            data,
            work / name.replace(" ", "-").replace("%", ""),
            corpus=Corpus(documents),
            embedding_cache=cache_copy,
            progress=not quiet,
        )
        return result, time.perf_counter() - started

    cold, cold_seconds = build("cold", base.documents, cache_file)
    rows = [("cold", len(base.documents), cold, cold_seconds, "-")]
    before = read_documents_table(cold.snapshot_dir)
    for name, (documents, expected) in variants(base.documents).items():
        # each rebuild starts from the cache as the cold build left it (a copy), so one
        # variant's new texts are not already cached for the next
        copy = work / f"cache-{len(rows)}.sqlite3"
        with sqlite3.connect(cache_file) as source, sqlite3.connect(copy) as target:
            source.backup(target)
        result, seconds = build(name, documents, copy)
        found = compare_tables(before, read_documents_table(result.snapshot_dir))
        exact = (
            set(found.changed) == expected["changed"]
            and set(found.added) == expected["added"]
            and set(found.removed) == expected["removed"]
        )
        diff = f"+{len(found.added)} -{len(found.removed)} ~{len(found.changed)} exact={exact}"
        rows.append((name, len(documents), result, seconds, diff))

    print(f"\nload average at end: {os.getloadavg()}")
    print(
        "| build | documents | chunks | embedded | reused | seconds | % of cold | diff |\n"
        "|---|---:|---:|---:|---:|---:|---:|---|"
    )
    for name, documents, result, seconds, diff in rows:
        counts = result.counts
        print(
            f"| {name} | {documents} | {counts['build_chunks_total']} | "
            f"{counts['build_chunks_embedded']} | {counts['build_chunks_reused']} | "
            f"{seconds:.1f} | {100 * seconds / cold_seconds:.1f}% | {diff} |"
        )
    if sentence_vectors:
        for name, _, result, _, _ in rows:
            c = result.counts
            print(
                f"sentences {name}: {c['build_sentences_total']} total, "
                f"{c['build_sentences_embedded']} embedded, {c['build_sentences_reused']} reused"
            )
    print(f"\nsnapshots and cache under {work}")


if __name__ == "__main__":
    main()
