"""Text embedders: the bundled all-MiniLM-L6-v2 (offline, sha256-checked) and a hash fake."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from rag_model.config import HASH_MODEL_ID, MINILM_MAX_TOKENS, MINILM_MODEL_ID, EmbeddingConfig
from rag_model.errors import EmbedderError
from rag_model.minilm import (
    MINILM_FILES,
    ONNX_EMBEDDER_FILES,
    ONNX_MODEL_FILE,
    ONNX_TOKENIZER_FILE,
    bundled_minilm_dir,
    verify_minilm_weights,
)
from rag_model.onnx_export import exported_minilm_dir
from rag_model.progress import steps


class Embedder(ABC):
    """Turns texts into vectors. Subclasses implement ``embed_batch``; the rest builds on it.

    Example:
        >>> embedder = HashEmbedder(dimension=8)
        >>> embedder.embed(["a question", "a passage"]).shape
        (2, 8)
    """

    model_id: str
    dimension: int

    @abstractmethod
    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Embed one batch of texts into a float32 array of shape (len(texts), dimension)."""

    def warm_up(self) -> None:  # noqa: B027 - optional hook, most fakes need nothing
        """Load heavy resources; called once per process before the first batch."""

    def token_counter(self) -> Callable[[str], int]:
        """Counts tokens as this embedder sees them (here: words), for token-sized chunks."""
        return lambda text: len(re.findall(r"\w+", text))

    def embed(
        self, texts: Sequence[str], batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        """Embed any number of texts in batches, optionally with a progress bar."""
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # batches of similar length waste less compute on padding (sentence-transformers does
        # the same inside encode); measured 0.65 -> see bench/README.md for the ratio after
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        ordered = [texts[i] for i in order]
        starts = steps(range(0, len(ordered), batch_size), "embedding", progress, "batch")
        batches = [self.embed_batch(ordered[start : start + batch_size]) for start in starts]
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        vectors[order] = np.vstack(batches)
        return vectors


class HashEmbedder(Embedder):
    """Deterministic bag-of-words vectors from SHA-256 of each token (fast unit tests only).

    Texts that share words get similar vectors, so retrieval behaves plausibly in tests.
    """

    model_id = HASH_MODEL_ID

    def __init__(self, dimension: int = 384) -> None:
        if dimension <= 0:
            raise EmbedderError(f"dimension must be > 0, got {dimension}")
        self.dimension = dimension

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in re.findall(r"\w+", text.lower()):
                digest = hashlib.sha256(token.encode()).digest()
                index = int.from_bytes(digest[:4], "little") % self.dimension
                vectors[row, index] += 1.0 if digest[4] % 2 else -1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)


class _MiniLMEmbedder(Embedder):
    """What both MiniLM backends share: identity, model folder, settings, token counting."""

    model_id = MINILM_MODEL_ID
    dimension = 384

    def __init__(self, model_dir: str | Path, normalize: bool = True, threads: int | None = None):
        self.model_dir = Path(model_dir)
        self.normalize = normalize
        self.threads = threads

    def token_counter(self) -> Callable[[str], int]:
        """Word pieces of the model's own tokenizer (tokenizer.json; no transformers import)."""
        return _piece_counter(self.model_dir / ONNX_TOKENIZER_FILE)


class SentenceTransformerEmbedder(_MiniLMEmbedder):
    """all-MiniLM-L6-v2 through sentence-transformers, from local files only.

    Example:
        >>> embedder = SentenceTransformerEmbedder(bundled_minilm_dir())
        >>> embedder.embed(["hello"]).shape
        (1, 384)
    """

    _model = None

    def warm_up(self) -> None:
        if self._model is not None:
            return
        verify_minilm_weights(self.model_dir)
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderError(
                f"the MiniLM embedder needs sentence-transformers and torch ({exc}); install "
                "the torch extra: 'pip install torch==2.13.0' then 'pip install rag-model[torch]'"
            ) from exc
        if self.threads:
            torch.set_num_threads(self.threads)
        self._model = SentenceTransformer(str(self.model_dir), device="cpu", local_files_only=True)

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        self.warm_up()
        assert self._model is not None
        return self._model.encode(
            list(texts),
            batch_size=len(texts),
            normalize_embeddings=self.normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )


class OnnxEmbedder(_MiniLMEmbedder):
    """all-MiniLM-L6-v2 exported to ONNX and run by onnxruntime, without torch.

    Tokenized by the ``tokenizers`` library from the model's tokenizer.json, mean-pooled and
    normalised in numpy: serving imports neither torch nor transformers.

    Example:
        >>> embedder = OnnxEmbedder(exported_minilm_dir(quantize=False), threads=1)
        >>> embedder.embed(["hello"]).shape
        (1, 384)
    """

    _session = None
    _tokenizer = None

    def warm_up(self) -> None:
        if self._session is not None:
            return
        missing = [name for name in ONNX_EMBEDDER_FILES if not (self.model_dir / name).is_file()]
        if missing:
            raise EmbedderError(
                f"no {', '.join(missing)} in {self.model_dir}: the onnx backend's files are "
                "missing; log the model again with embedding.backend onnx"
            )
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EmbedderError(
                f"the onnx backend needs onnxruntime and tokenizers ({exc}); "
                "run 'pip install onnxruntime==1.31.1 tokenizers==0.23.3'"
            ) from exc
        tokenizer = Tokenizer.from_file(str(self.model_dir / ONNX_TOKENIZER_FILE))
        # what sentence-transformers does: cut at the model's window, pad to the longest text
        tokenizer.enable_truncation(max_length=MINILM_MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - not a secret
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self._thread_count()
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(self.model_dir / ONNX_MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = tokenizer

    def _thread_count(self) -> int:
        # onnxruntime ignores OMP_NUM_THREADS; honouring it lets one setting (gunicorn.conf.py
        # sets it from RAG_TORCH_THREADS) govern both backends. 0: onnxruntime's own choice
        if self.threads:
            return self.threads
        try:
            return max(int(os.environ.get("OMP_NUM_THREADS", "0")), 0)
        except ValueError:
            return 0

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        self.warm_up()
        assert self._session is not None and self._tokenizer is not None
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        (states,) = self._session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        )
        # mean pooling over the real tokens, as MiniLM's 1_Pooling config says
        weights = mask[:, :, None].astype(np.float32)
        pooled = (states * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        if self.normalize:
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32, copy=False)


def _piece_counter(tokenizer_file: Path) -> Callable[[str], int]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_truncation()
    tokenizer.no_padding()  # tokenizer.json pads to 128: count real pieces only
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


class CachingEmbedder(Embedder):
    """A bounded LRU cache of vectors by text in front of another embedder (query time only).

    At query time the same texts recur: the sentences of chunks that are retrieved again and
    again, and each question, which retrieval and the extractive generator both embed.

    Example:
        >>> cached = CachingEmbedder(HashEmbedder(), max_entries=10_000)
        >>> cached.embed(["q"]); cached.embed(["q"]); cached.hits
        1
    """

    def __init__(self, inner: Embedder, max_entries: int = 20_000) -> None:
        if max_entries <= 0:
            raise EmbedderError(f"max_entries must be > 0, got {max_entries}")
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # gunicorn threads or Flask's dev server may share it

    def warm_up(self) -> None:
        self.inner.warm_up()

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for text in texts:
                if text in self._vectors:
                    self._vectors.move_to_end(text)
                    found[text] = self._vectors[text]
        missing = [text for text in dict.fromkeys(texts) if text not in found]
        if missing:
            fresh = self.inner.embed_batch(missing)
            found.update(zip(missing, fresh, strict=True))
            with self._lock:
                for text, vector in zip(missing, fresh, strict=True):
                    self._vectors[text] = vector
                while len(self._vectors) > self.max_entries:
                    self._vectors.popitem(last=False)
        with self._lock:
            self.hits += len(texts) - len(missing)
            self.misses += len(missing)
        return np.vstack([found[text] for text in texts])


class PrecomputedEmbedder(Embedder):
    """Vectors embedded elsewhere (e.g. on Spark executors), looked up by text.

    Lets the snapshot writer take vectors it did not compute through the same ``Embedder``
    interface it uses for in-process builds.

    Example:
        >>> embedder = PrecomputedEmbedder("hash-embedder", {"a": np.ones(4, np.float32)})
        >>> embedder.embed(["a"]).shape
        (1, 4)
    """

    def __init__(self, model_id: str, vectors: Mapping[str, np.ndarray], dimension: int = 0):
        self.model_id = model_id
        self.vectors = vectors
        first = next(iter(vectors.values()), None)
        self.dimension = len(first) if first is not None else dimension

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        missing = [text for text in texts if text not in self.vectors]
        if missing:
            raise EmbedderError(
                f"{len(missing)} text(s) were not embedded beforehand, e.g. {missing[0][:60]!r}; "
                "embed every text the build needs before writing the snapshot"
            )
        return np.vstack([self.vectors[text] for text in texts]).astype(np.float32, copy=False)


def copy_embedder_files(config: EmbeddingConfig, destination: Path) -> Path | None:
    """Copy the files the embedder needs at serving time into ``destination``.

    Returns the folder, or None for embedders that need no files (the hash fake).
    """
    if config.model == HASH_MODEL_ID:
        return None
    if config.backend != "torch":
        source, names = exported_minilm_dir(config.backend == "onnx-int8"), ONNX_EMBEDDER_FILES
    else:
        source, names = bundled_minilm_dir(), MINILM_FILES
    for name in names:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, target)
    return destination


def make_embedder(
    config: EmbeddingConfig, model_dir: Path | None = None, threads: int | None = None
) -> Embedder:
    """The embedder ``config`` names; MiniLM from ``model_dir`` or else the bundled package.

    The onnx backends without ``model_dir`` (a build) export the bundled weights first.
    """
    if config.model == HASH_MODEL_ID:
        return HashEmbedder()
    if config.backend != "torch":
        if model_dir is None:
            model_dir = exported_minilm_dir(config.backend == "onnx-int8")
        return OnnxEmbedder(model_dir, normalize=config.normalize, threads=threads)
    return SentenceTransformerEmbedder(
        model_dir or bundled_minilm_dir(), normalize=config.normalize, threads=threads
    )
