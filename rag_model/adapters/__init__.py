"""Framework adapters: rag-model's packaged retriever as a LangChain or LlamaIndex retriever."""
