"""Latency of the cross-encoder re-ranker per (question, top_n), at one thread.

Usage: python -m bench.rerank_latency [--model FOLDER] [--top-n 10,20,50] [--questions 50]
With ``--model`` it times that cross-encoder (a CrossEncoder folder is exported to ONNX first,
as ``log_rag_model`` does), e.g. a local save of ``cross-encoder/ms-marco-MiniLM-L-6-v2``.
Without it, it times a tiny random-weight BERT cross-encoder made here (the one the tests
use): no trained cross-encoder is reachable offline, so that row measures the machinery (ONNX
session, tokenization, batching), not a useful model. Pairs are SQuAD-like: a 12-word question
and 120-word passages.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
import numpy as np

from rag_model.documents import RetrievedChunk
from rag_model.rerank import CrossEncoderReranker, prepare_reranker_files

WORDS = (
    "the a of and to in is was for on that with as by at from it his an were are which this "
    "be or has had first not but also its new after two who their one been have other more "
    "bridge built river castle king war city music oxygen iron metal water air steel norman "
    "england france paris london science cell protein gene study patients results effect"
).split()


def make_tiny_cross_encoder(folder: Path, seed: int = 0) -> Path:
    """Save a random-weight BERT sequence classifier (1 label) and its tokenizer in ``folder``.

    The layout of a sentence-transformers ``CrossEncoder`` save (a Hugging Face folder), built
    locally from a word vocabulary: no download. Needs torch and transformers.
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,
    )
    torch.manual_seed(seed)
    BertForSequenceClassification(config).eval().save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def _text(rng: np.random.Generator, words: int) -> str:
    return " ".join(rng.choice(WORDS, size=words))


@click.command()
@click.option("--model", "model_dir", help="cross-encoder folder (CrossEncoder or ONNX export)")
@click.option("--top-n", default="10,20,50", show_default=True)
@click.option("--questions", default=50, show_default=True)
@click.option("--batch-size", default=16, show_default=True)
def main(model_dir: str | None, top_n: str, questions: int, batch_size: int) -> None:
    """Print median and p95 ms per question for each top_n."""
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(model_dir) if model_dir else make_tiny_cross_encoder(Path(tmp) / "tiny")
        exported = prepare_reranker_files(source, Path(tmp) / "onnx")
        reranker = CrossEncoderReranker(exported, batch_size=batch_size, threads=1)
        reranker.warm_up()
        label = model_dir or "tiny random BERT (2 layers, hidden 32)"
        print(f"cross-encoder: {label}; onnxruntime, 1 thread, batch {batch_size}\n")
        print("| top_n | ms per question (p50) | p95 | ms per pair |\n|---|---|---|---|")
        for n in (int(value) for value in top_n.split(",")):
            times = []
            for _ in range(questions):
                question = _text(rng, 12)
                chunks = [RetrievedChunk(str(i), str(i), _text(rng, 120), 0.0) for i in range(n)]
                started = time.perf_counter()
                reranker.rerank(question, chunks)
                times.append((time.perf_counter() - started) * 1000)
            p50, p95 = np.percentile(times, [50, 95])
            print(f"| {n} | {p50:.1f} | {p95:.1f} | {p50 / n:.2f} |")


if __name__ == "__main__":
    main()
