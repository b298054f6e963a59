"""Framework adapters: a rag-model pipeline as a LangChain or LlamaIndex retriever.

They stay in the pure core and take a ``RagPipeline``, however it was made (from a snapshot on
disk, or from a logged model). Loading a model by its URI needs MLflow, so it is the packaging
layer's job, not theirs: ``rag_model.packaging.loading.load_pipeline``. Example::

    pipeline = load_pipeline("models:/rag-model@production")
    retriever = RagModelRetriever(pipeline=pipeline, k=3)
"""
