"""The seed-style model: an ``mlflow.pyfunc`` PythonModel doing retrieval + an extractive answer.

Ported from ``../shared/bench/seed_style/rag_model.py`` unchanged in behaviour (renamed so it
cannot shadow the product's ``rag_model`` package where it is served).

load_context:  SentenceTransformer(all-MiniLM-L6-v2, cpu, torch's default threads)
               + chromadb.PersistentClient(<artifact dir>)
               + precomputed per-sentence embeddings (artifact "sentences", npz)
predict(df["question"]):
   1. embed all questions (one encode() call, normalized)
   2. collection.query(query_embeddings=..., n_results=4)      (cosine HNSW)
   3. extractive answer = retrieved sentence with max cosine to the question
      (sentence embeddings were precomputed at index time -> a numpy dot, no 2nd encode)
   returns DataFrame[answer: str, sources: list[str], score: float]

Timing instrumentation: if env RAG_TIMING=1, per-stage wall times (ms) are accumulated in
RagModel.timings.
"""

import os
import time

import mlflow
import numpy as np
import pandas as pd

K = 4


class RagModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import chromadb
        from chromadb.config import Settings
        from seed_style_common import embedder_path
        from sentence_transformers import SentenceTransformer

        self.embedder = SentenceTransformer(embedder_path(), device="cpu")
        self.client = chromadb.PersistentClient(
            path=context.artifacts["chroma"], settings=Settings(anonymized_telemetry=False)
        )
        self.collection = self.client.get_collection("docs", embedding_function=None)
        z = np.load(context.artifacts["sentences"], allow_pickle=False)
        self.sent_emb = z["emb"]  # [n_sent, 384] float32, L2-normalized
        self.sent_text = z["text"].tolist()  # list[str] (avoid a 30 MB fixed-width <U array)
        starts, ends, ids = z["start"], z["end"], z["ids"]
        self.span = {str(i): (int(s), int(e)) for i, s, e in zip(ids, starts, ends, strict=True)}
        self.timings: dict[str, list[float]] | None = (
            {} if os.environ.get("RAG_TIMING") == "1" else None
        )

    def _t(self, key: str, t0: float) -> None:
        if self.timings is not None:
            self.timings.setdefault(key, []).append((time.perf_counter() - t0) * 1e3)

    # no type hints: MLflow reads predict's hints for schema validation; the original has none
    def predict(self, context, model_input, params=None):
        t0 = time.perf_counter()
        if isinstance(model_input, pd.DataFrame):
            questions = model_input["question"].astype(str).tolist()
        elif isinstance(model_input, dict):
            q = model_input["question"]
            questions = [q] if isinstance(q, str) else list(q)
        else:
            questions = [str(x) for x in model_input]
        self._t("to_list", t0)

        t0 = time.perf_counter()
        q_emb = self.embedder.encode(
            questions,
            batch_size=64,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        self._t("embed", t0)

        t0 = time.perf_counter()
        res = self.collection.query(
            query_embeddings=q_emb, n_results=K, include=["metadatas", "distances"]
        )
        self._t("chroma", t0)

        t0 = time.perf_counter()
        answers, sources, scores = [], [], []
        for qi in range(len(questions)):
            ids = res["ids"][qi]
            rows = np.concatenate([np.arange(*self.span[i]) for i in ids])
            sims = self.sent_emb[rows] @ q_emb[qi]
            best = int(np.argmax(sims))
            answers.append(str(self.sent_text[rows[best]]))
            sources.append(
                [f"{i}|{m['source']}" for i, m in zip(ids, res["metadatas"][qi], strict=True)]
            )
            scores.append(float(sims[best]))
        out = pd.DataFrame({"answer": answers, "sources": sources, "score": scores})
        self._t("answer", t0)
        return out
