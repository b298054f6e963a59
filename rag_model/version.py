"""The rag-model release, written into every manifest and model it builds.

Its own module so that the modules that record it need not import the package (``rag_model``
imports the pipeline, which imports them: a cycle).
"""

__version__ = "0.1.0"
