"""A cross-encoder re-ranker run by onnxruntime (``retrieval.rerank``).

A cross-encoder reads the question and a candidate chunk together and gives one relevance
logit; it re-orders the best ``top_n`` candidates of the first-stage retrieval. The serving
form is an ONNX export with its tokenizer::

    <folder>/model.onnx       inputs input_ids, attention_mask (token_type_ids if it has them),
                              output logits (batch, 1) or (batch, labels): column 0 is used
    <folder>/tokenizer.json   the ``tokenizers`` file of the model's tokenizer

``prepare_reranker_files`` makes that folder from a sentence-transformers ``CrossEncoder``
folder (an Hugging Face sequence-classification model: config.json, weights, tokenizer) with
torch at log time, or copies an existing export; serving imports neither torch nor
transformers, and nothing is ever downloaded (``local_files_only``).
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from rag_model.config import RagConfig
from rag_model.documents import RetrievedChunk
from rag_model.errors import ModelError

RERANK_MODEL_FILE = "model.onnx"
RERANK_TOKENIZER_FILE = "tokenizer.json"
RERANK_FILES = (RERANK_MODEL_FILE, RERANK_TOKENIZER_FILE)
RERANK_OPSET = 17


def is_onnx_export(folder: Path) -> bool:
    """Whether ``folder`` already holds the serving form (model.onnx + tokenizer.json)."""
    return all((folder / name).is_file() for name in RERANK_FILES)


def prepare_reranker_files(source: str | Path, destination: Path) -> Path:
    """Write the serving form of the cross-encoder at ``source`` into ``destination``.

    An ONNX export is copied; a CrossEncoder / Hugging Face folder is exported with torch.

    Raises:
        ModelError: ``source`` is missing, is neither form, or cannot be read or exported.
    """
    folder = Path(source)
    if not folder.is_dir():
        raise ModelError(
            f"retrieval.rerank.path {folder} is not a folder; give a sentence-transformers "
            "CrossEncoder folder or an ONNX export (model.onnx + tokenizer.json)"
        )
    destination.mkdir(parents=True, exist_ok=True)
    if is_onnx_export(folder):
        for name in RERANK_FILES:
            shutil.copyfile(folder / name, destination / name)
        return destination
    if not (folder / "config.json").is_file():
        raise ModelError(
            f"retrieval.rerank.path {folder} holds neither model.onnx + tokenizer.json nor a "
            "CrossEncoder (config.json and weights); save the model there first, e.g. "
            "CrossEncoder(name).save(folder) on a machine with network access"
        )
    export_cross_encoder(folder, destination)
    return destination


def export_cross_encoder(folder: Path, destination: Path) -> None:
    """Export a Hugging Face sequence-classification folder to model.onnx + tokenizer.json."""
    try:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
    except ImportError as exc:
        raise ModelError(
            f"exporting the cross-encoder to ONNX needs torch and transformers ({exc}); install "
            "the torch extra, or give an ONNX export (model.onnx + tokenizer.json)"
        ) from exc
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(folder), local_files_only=True
        ).eval()
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load the cross-encoder in {folder}: {exc}; check that the folder is a "
            "complete CrossEncoder save (config.json, weights, tokenizer files)"
        ) from None
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(
            f"the tokenizer in {folder} has no fast (tokenizers) form; serving needs tokenizer.json"
        )
    tokenizer.backend_tokenizer.save(str(destination / RERANK_TOKENIZER_FILE))
    inputs = ["input_ids", "attention_mask"]
    if "token_type_ids" in tokenizer.model_input_names:
        inputs.append("token_type_ids")

    class _Keywords(torch.nn.Module):
        # transformers 5 refuses positional inputs, and the exporter passes them positionally
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *tensors):  # noqa: ANN002, D102
            return self.inner(**dict(zip(inputs, tensors, strict=True))).logits

    example = torch.ones(2, 8, dtype=torch.long)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shapes of the example
        torch.onnx.export(
            _Keywords(model),
            tuple(
                example if name != "token_type_ids" else torch.zeros_like(example)
                for name in inputs
            ),
            str(destination / RERANK_MODEL_FILE),
            input_names=inputs,
            output_names=["logits"],
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in inputs}
            | {"logits": {0: "batch"}},
            opset_version=RERANK_OPSET,
            dynamo=False,
        )


class CrossEncoderReranker:
    """Scores (question, chunk) pairs with an ONNX cross-encoder and re-orders the chunks.

    Example:
        >>> reranker = CrossEncoderReranker(folder, batch_size=16, threads=1)
        >>> [c.id for c in reranker.rerank("who built it?", chunks)]
    """

    def __init__(
        self,
        folder: str | Path,
        batch_size: int = 16,
        max_length: int = 512,
        threads: int | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.batch_size = batch_size
        self.max_length = max_length
        self.threads = threads
        self._session: Any = None
        self._tokenizer: Any = None
        self._inputs: list[str] = []

    def warm_up(self) -> None:
        """Load the tokenizer and the onnxruntime session (once)."""
        if self._session is not None:
            return
        missing = [name for name in RERANK_FILES if not (self.folder / name).is_file()]
        if missing:
            raise ModelError(
                f"the cross-encoder folder {self.folder} lacks {', '.join(missing)}; log the "
                "model again with retrieval.rerank.path naming a CrossEncoder or ONNX folder"
            )
        import onnxruntime
        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_file(str(self.folder / RERANK_TOKENIZER_FILE))
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self.threads or _env_threads()
            options.inter_op_num_threads = 1
            session = onnxruntime.InferenceSession(
                str(self.folder / RERANK_MODEL_FILE), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            raise ModelError(
                f"cannot load the cross-encoder in {self.folder}: {exc}; its files are damaged "
                "or not a cross-encoder export"
            ) from None
        tokenizer.enable_truncation(max_length=self.max_length)
        tokenizer.enable_padding()
        self._inputs = [i.name for i in session.get_inputs()]
        self._session, self._tokenizer = session, tokenizer

    def scores(self, question: str, texts: Sequence[str]) -> np.ndarray:
        """One relevance logit per text (higher is more relevant)."""
        self.warm_up()
        found = []
        for start in range(0, len(texts), self.batch_size):
            batch = [(question, text) for text in texts[start : start + self.batch_size]]
            encodings = self._tokenizer.encode_batch(batch)
            feeds = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            (logits,) = self._session.run(None, {name: feeds[name] for name in self._inputs})
            found.append(np.asarray(logits, dtype=np.float32).reshape(len(batch), -1)[:, 0])
        return np.concatenate(found) if found else np.zeros(0, dtype=np.float32)

    def rerank(self, question: str, chunks: Sequence[RetrievedChunk]) -> list[RetrievedChunk]:
        """``chunks`` ordered by the cross-encoder's score (kept under ``scores["rerank"]``)."""
        if not chunks:
            return []
        logits = self.scores(question, [chunk.text for chunk in chunks])
        order = sorted(range(len(chunks)), key=lambda i: (-float(logits[i]), i))
        return [
            replace(
                chunks[i],
                score=float(logits[i]),
                scores={**chunks[i].scores, "rerank": float(logits[i])},
            )
            for i in order
        ]


def _env_threads() -> int:
    # the same rule as the onnx embedder: OMP_NUM_THREADS governs both; 0: onnxruntime's choice
    try:
        return max(int(os.environ.get("OMP_NUM_THREADS", "0")), 0)
    except ValueError:
        return 0


def make_reranker(
    config: RagConfig, folder: str | Path | None = None, threads: int | None = None
) -> CrossEncoderReranker | None:
    """The re-ranker ``retrieval.rerank`` names; None when re-ranking is off.

    Its files come from ``folder`` (a model version's copy) or else its configured path (which
    must then be an ONNX export).

    Raises:
        ModelError: the folder lacks the ONNX export (a CrossEncoder folder is exported when
            the model is logged, not at serving time).
    """
    rerank = config.retrieval.rerank
    if rerank is None:
        return None
    where = Path(folder) if folder is not None else Path(rerank.path)
    if not is_onnx_export(where):
        raise ModelError(
            f"no cross-encoder export (model.onnx + tokenizer.json) in {where}; a CrossEncoder "
            "folder is exported when the model is logged (log_rag_model), or export it with "
            "rag_model.rerank.prepare_reranker_files"
        )
    return CrossEncoderReranker(where, rerank.batch_size, rerank.max_length, threads)
