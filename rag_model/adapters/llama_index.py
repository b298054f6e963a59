"""A LlamaIndex retriever (``BaseRetriever``) over a rag-model pipeline.

Example:
    >>> pipeline = load_pipeline("models:/rag-model@production")  # rag_model.packaging.loading
    >>> retriever = RagModelLlamaRetriever(pipeline, k=3)
    >>> retriever.retrieve("When was the Duchy of Normandy founded?")[0].score
    0.91
"""

from __future__ import annotations

from typing import Any

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from rag_model.pipeline import RagPipeline


class RagModelLlamaRetriever(BaseRetriever):
    """Retrieves with the packaged pipeline's own mode, embedder and index; no generation."""

    def __init__(
        self, pipeline: RagPipeline, k: int | None = None, filter: dict[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.k = k
        self.filter = filter

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [
            NodeWithScore(
                node=TextNode(
                    id_=chunk.id,
                    text=chunk.text,
                    metadata={
                        **chunk.metadata,
                        "document_id": chunk.document_id,
                        "scores": dict(chunk.scores),
                    },
                ),
                score=chunk.score,
            )
            for chunk in self.pipeline.retrieve(query_bundle.query_str, k=self.k, where=self.filter)
        ]
