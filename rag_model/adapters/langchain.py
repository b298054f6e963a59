"""A LangChain retriever (``BaseRetriever``) over a rag-model pipeline.

Example:
    >>> pipeline = load_pipeline("models:/rag-model@production")  # rag_model.packaging.loading
    >>> retriever = RagModelRetriever(pipeline=pipeline, k=3)
    >>> retriever.invoke("When was the Duchy of Normandy founded?")[0].metadata["score"]
    0.91
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag_model.pipeline import RagPipeline


class RagModelRetriever(BaseRetriever):
    """Retrieves with the packaged pipeline's own mode, embedder and index; no generation."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    pipeline: RagPipeline
    k: int | None = None
    filter: dict[str, Any] | None = None

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [
            Document(
                id=chunk.id,
                page_content=chunk.text,
                metadata={
                    **chunk.metadata,
                    "id": chunk.id,
                    "document_id": chunk.document_id,
                    "score": chunk.score,
                    "scores": dict(chunk.scores),
                },
            )
            for chunk in self.pipeline.retrieve(query, k=self.k, where=self.filter)
        ]
