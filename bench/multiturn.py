"""Follow-up questions: retrieval hit rate@k with and without the conversation.

Usage: python -m bench.multiturn [--fake] [--config path.yaml]

Builds the sample corpus (default config: MiniLM, hybrid; ``--fake``: the hash embedder) and
retrieves the last turn of each conversation of ``data/sample/multiturn.jsonl`` three ways:
alone; with the offline rule of ``rag_model.followup`` (the previous user turn folded in when
the question looks like a follow-up); with the previous turn always folded in. A hit at k:
the paragraph that answers the follow-up is among the first k chunks' documents. Also prints
how often the rule fires on the follow-ups and on the standalone questions of ``eval.jsonl``
(where folding in an unrelated earlier turn could only hurt).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

PROJECT = Path(__file__).resolve().parents[1]
SAMPLE = PROJECT / "data" / "sample"
KS = (1, 3, 5)


@click.command()
@click.option("--fake", is_flag=True, help="The hash embedder (quick, meaningless quality).")
@click.option("--config", "config_path", default="", help="YAML file of config overrides.")
def main(fake: bool, config_path: str) -> None:
    """Print hit rate@1/3/5 for the last turn alone, the follow-up rule, and always folding."""
    from rag_model.build import build_snapshot
    from rag_model.config import RagConfig
    from rag_model.followup import fold, is_follow_up, standalone
    from rag_model.offline import apply_offline_defaults
    from rag_model.pipeline import RagPipeline

    apply_offline_defaults()
    if config_path:
        config = RagConfig.from_yaml(config_path)
    else:
        config = RagConfig.from_dict({"embedding": {"model": "hash-embedder"}} if fake else {})
    lines = (SAMPLE / "multiturn.jsonl").read_text(encoding="utf-8").splitlines()
    conversations = [json.loads(line) for line in lines if line.strip()]
    eval_rows = (SAMPLE / "eval.jsonl").read_text(encoding="utf-8").splitlines()
    standalone_questions = [json.loads(row)["question"] for row in eval_rows if row.strip()]
    ways = {
        "last turn alone": lambda previous, last: last,
        "follow-up rule (offline)": lambda previous, last: standalone(last, previous),
        "previous turn always folded in": lambda previous, last: fold(previous, last),
    }
    hits = {name: dict.fromkeys(KS, 0) for name in ways}
    with tempfile.TemporaryDirectory() as tmp:
        build_snapshot(config, SAMPLE / "corpus.jsonl", Path(tmp) / "snapshot")
        pipeline = RagPipeline.from_snapshot(config, Path(tmp) / "snapshot")
        for conversation in conversations:
            *previous, last = conversation["turns"]
            relevant = set(conversation["relevant_ids"])
            for name, query_of in ways.items():
                chunks = pipeline.retrieve(query_of(previous, last), k=max(KS))
                documents = [chunk.document_id for chunk in chunks]
                for k in KS:
                    hits[name][k] += bool(relevant & set(documents[:k]))
        pipeline.index.close()
    fired = sum(is_follow_up(c["turns"][-1]) for c in conversations)
    false = sum(is_follow_up(q) for q in standalone_questions)
    count = len(conversations)
    print(
        f"\n{count} conversations (data/sample/multiturn.jsonl), {config.embedding.model}, "
        f"retrieval {config.retrieval.mode}, chunk size {config.chunking.chunk_size}\n"
    )
    print("| retrieval query | " + " | ".join(f"hit@{k}" for k in KS) + " |")
    print("|---|" + "---|" * len(KS))
    for name, row in hits.items():
        print(f"| {name} | " + " | ".join(f"{row[k] / count:.3f}" for k in KS) + " |")
    print(
        f"\nThe rule fires on {fired}/{count} follow-ups and on {false}/"
        f"{len(standalone_questions)} standalone questions of eval.jsonl."
    )


if __name__ == "__main__":
    main()
