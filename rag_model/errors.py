"""The one error hierarchy of rag-model: every message says what was wrong and how to fix it."""


class RagError(Exception):
    """Base class of every error rag-model raises on purpose."""


class ConfigError(RagError, ValueError):
    """A configuration value is unknown, of the wrong type or impossible."""


class IngestionError(RagError):
    """Documents could not be read, or there were none."""


class IndexNotFoundError(RagError):
    """A Chroma snapshot was expected at a path that does not hold one."""


class IndexServerError(RagError):
    """The Chroma server of a server-mode index cannot be reached or failed to answer."""


class IntegrityError(RagError):
    """An artifact does not match its manifest: altered, truncated, missing or incompatible."""


class EmbedderError(RagError):
    """The embedding model could not be found, verified or loaded."""


class QueryError(RagError, ValueError):
    """A query is invalid: empty question, k out of range, malformed filter."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ModelError(RagError):
    """A model URI or folder does not hold a rag-model version this process can serve."""


class GenerationError(RagError):
    """The generator failed to produce an answer."""
