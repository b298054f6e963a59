"""RagConfig: the one validated, immutable description of a RAG pipeline.

Defaults live here and nowhere else; experiment YAML files list only overrides. The config is
stored inside every model version (``model_config``) and logged as flattened run params, so a
served version never reads chunking, k or embedder settings from anywhere else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rag_model.errors import ConfigError
from rag_model.prompts import DEFAULT_TEMPLATE, TEMPLATE_FIELDS, template_fields
from rag_model.query import MAX_K

MINILM_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_MAX_TOKENS = 256  # the model's max_seq_length: longer inputs are truncated
HASH_MODEL_ID = "hash-embedder"  # deterministic fake, for tests and --fake smoke runs
EMBEDDING_MODELS = (MINILM_MODEL_ID, HASH_MODEL_ID)
# how MiniLM is run: torch (sentence-transformers), or an ONNX export of the same weights run by
# onnxruntime (fp32, or int8-quantized weights); the ONNX file is made when the model is logged
EMBEDDING_BACKENDS = ("torch", "onnx", "onnx-int8")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Chroma's own rule for collection names (its server answers the same in an error)
COLLECTION_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]")


def check_server_url(url: str) -> None:
    """Refuse a Chroma server URL that is not ``http(s)://host:port`` (no path, no credentials).

    Raises:
        ValueError: saying what is wrong with ``url``.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"server_url must look like http://host:port, got {url!r}")
    if parts.username or parts.password:
        # the URL is stored in the model and logged as a run param
        raise ValueError(
            "server_url must not hold credentials; put the token in an environment variable "
            "and name it in token_env"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"server_url must be only scheme, host and port, got {url!r}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        raise ValueError(
            f"server_url must include a port between 1 and 65535 (chroma run serves 8000), "
            f"got {url!r}"
        )


class _Section(BaseModel):
    # strict: "5" is not silently turned into 5, nor 5.7 into 5
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class ChunkingConfig(_Section):
    """How documents are split into chunks.

    ``recursive``: LangChain's recursive character splitter, sizes in characters. ``token``:
    the same splitter measuring in the embedder's own tokens. ``sentence``: LlamaIndex's
    sentence splitter, sizes in the embedder's tokens.
    """

    strategy: Literal["recursive", "token", "sentence"] = "recursive"
    chunk_size: int = Field(800, gt=0, description="maximum characters (or tokens) per chunk")
    chunk_overlap: int = Field(100, ge=0, description="shared by neighbouring chunks")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingConfig:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap must be less than chunk_size, got chunk_overlap="
                f"{self.chunk_overlap} and chunk_size={self.chunk_size}"
            )
        return self


class EmbeddingConfig(_Section):
    """Which embedding model encodes chunks and questions."""

    model: str = MINILM_MODEL_ID
    # onnx by default: the same weights exported at log time, run by onnxruntime; 1.7x the
    # requests/s of torch at 16 clients and no torch import in a server (bench/README.md)
    backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "onnx", description="how MiniLM runs: torch, or onnxruntime on an export of its weights"
    )
    batch_size: int = Field(32, gt=0, le=4096)
    normalize: bool = True
    query_cache_size: int = Field(
        20_000, ge=0, le=10_000_000, description="query-time LRU of vectors by text; 0: none"
    )

    @model_validator(mode="before")
    @classmethod
    def _backend_of_other_models(cls, data: Any) -> Any:
        # the backend choice is MiniLM's: another model (the hash fake) runs as it is, so its
        # unset backend is "torch" (no export), not the MiniLM default
        if isinstance(data, Mapping) and "backend" not in data:
            if data.get("model", MINILM_MODEL_ID) != MINILM_MODEL_ID:
                return {**data, "backend": "torch"}
        return data

    @model_validator(mode="after")
    def _known_model(self) -> EmbeddingConfig:
        if self.model not in EMBEDDING_MODELS:
            raise ValueError(
                f"model must be one of {', '.join(EMBEDDING_MODELS)}, got {self.model!r}"
            )
        if self.backend != "torch" and self.model != MINILM_MODEL_ID:
            raise ValueError(
                f"backend {self.backend!r} runs {MINILM_MODEL_ID} only; use backend 'torch' "
                f"with {self.model!r}"
            )
        return self


class IndexConfig(_Section):
    """The Chroma collection: distance space, HNSW graph settings, and where it lives.

    ``location: bundled`` (the default) ships the Chroma snapshot inside the model version.
    ``location: server`` queries the collection ``collection`` on a Chroma server (``chroma
    run``) at ``server_url`` instead, for indexes larger than one replica; the token, if the
    server wants one, is read at run time from the environment variable ``token_env`` names
    and is never stored (docs/chroma-server.md).
    """

    space: Literal["cosine", "l2", "ip"] = "cosine"
    hnsw_m: int = Field(16, ge=2, le=512, description="HNSW max neighbours per node")
    hnsw_construction_ef: int = Field(100, gt=0, le=10_000)
    hnsw_search_ef: int = Field(100, gt=0, le=10_000)
    # the extractive generator ranks the retrieved chunks' sentences; embedding them at build
    # time leaves only the question to embed per answer (bench/README.md: the largest saving)
    sentence_vectors: bool = Field(True, description="embed chunk sentences at build time")
    location: Literal["bundled", "server"] = Field(
        "bundled", description="bundled: Chroma files inside the model; server: a Chroma server"
    )
    server_url: str | None = Field(None, description="server mode: http(s)://host:port")
    collection: str | None = Field(None, description="server mode: the collection's name")
    token_env: str | None = Field(None, description="server mode: env var holding the token")
    server_verify: Literal["digest", "fingerprint"] = Field(
        "digest",
        description="server mode, at load: re-read every record (digest) or compare the "
        "collection's recorded fingerprint and count only",
    )

    @model_validator(mode="after")
    def _location(self) -> IndexConfig:
        server_fields = [
            name for name in ("server_url", "collection", "token_env") if getattr(self, name)
        ]
        if self.location == "bundled":
            if server_fields:
                verb = "applies" if len(server_fields) == 1 else "apply"
                raise ValueError(
                    f"{', '.join(server_fields)} {verb} only to location 'server'; set "
                    "location: server, or remove them to bundle the index in the model"
                )
            return self
        if not self.server_url or not self.collection:
            raise ValueError(
                "location 'server' needs server_url (e.g. http://127.0.0.1:8000) and collection "
                "(the name the snapshot was published under)"
            )
        check_server_url(self.server_url)
        if not COLLECTION_NAME_RE.fullmatch(self.collection):
            raise ValueError(
                "collection must be 3-512 characters from [a-zA-Z0-9._-], starting and ending "
                f"with a letter or digit (Chroma's rule), got {self.collection!r}"
            )
        if self.token_env is not None and not ENV_NAME_RE.fullmatch(self.token_env):
            raise ValueError(
                "token_env must name the environment variable that holds the Chroma token "
                "(e.g. CHROMA_TOKEN), never the token itself"
            )
        return self


class RerankConfig(_Section):
    """A cross-encoder that re-ranks the best ``top_n`` candidates (``rag_model.rerank``).

    ``path`` is a sentence-transformers ``CrossEncoder`` folder (exported to ONNX when the model
    is logged) or an ONNX export (``model.onnx`` + ``tokenizer.json``). Its files are copied
    into the model version, digested in the manifest and run by onnxruntime; nothing is ever
    downloaded.
    """

    path: str = Field(min_length=1, description="cross-encoder folder (CrossEncoder or ONNX)")
    top_n: int = Field(20, gt=0, le=1000, description="candidates the cross-encoder scores")
    batch_size: int = Field(16, gt=0, le=1024, description="pairs per onnxruntime call")
    max_length: int = Field(512, gt=8, le=4096, description="tokens per (question, chunk) pair")


class RetrievalConfig(_Section):
    """How chunks are retrieved: dense (Chroma), lexical (BM25) or both fused.

    Then, optionally: candidates re-scored by their best sentence (``sentence_weight`` > 0,
    ``rag_model.rescoring``) and re-ranked by a cross-encoder (``rerank``). With
    ``search_unit: sentence`` the dense side searches sentences and returns their parent
    chunks (``rag_model.parents``).
    """

    # hybrid + weighted measured best on the sample set (hit rate@4 0.966 vs dense 0.888,
    # bench/retrieval_modes.py) and on SciFact (runtime-facts: 0.731 vs dense 0.645)
    mode: Literal["dense", "bm25", "hybrid"] = "hybrid"
    k: int = Field(4, gt=0, le=MAX_K, description="chunks per answer when a query gives none")
    fetch_k: int = Field(20, gt=0, le=1000, description="candidates per side before fusion")
    fusion: Literal["rrf", "weighted"] = "weighted"
    rrf_k: int = Field(60, gt=0, le=10_000, description="reciprocal rank fusion constant")
    dense_weight: float = Field(0.5, ge=0, le=1, description="weighted fusion: dense share")
    score_threshold: float | None = Field(None, description="drop results scoring below this")
    sentence_weight: float = Field(
        0.0, ge=0, le=1, description="share of the best sentence's score in a chunk's; 0: off"
    )
    sentence_depth: int = Field(
        20, gt=0, le=1000, description="candidates re-scored by their best sentence"
    )
    search_unit: Literal["chunk", "sentence", "both"] = Field(
        "chunk",
        description="dense side: search chunks, sentences returning parent chunks, or both "
        "(two signals, the dense weight split evenly)",
    )
    rerank: RerankConfig | None = Field(None, description="a cross-encoder re-ranker; None: off")

    @model_validator(mode="after")
    def _fetch_at_least_k(self) -> RetrievalConfig:
        if self.mode == "hybrid" and self.fetch_k < self.k:
            raise ValueError(
                f"fetch_k must be at least k in hybrid mode, got fetch_k={self.fetch_k} "
                f"and k={self.k}"
            )
        return self


class GenerationConfig(_Section):
    """How the answer is produced from the retrieved chunks.

    ``extractive`` (the offline default) needs no LLM. ``openai`` calls any OpenAI-compatible
    chat API (OpenAI, vLLM, Ollama, llama.cpp ...) at ``base_url``; the key is read at run time
    from the environment variable ``api_key_env`` names and is never stored.
    """

    generator: Literal["extractive", "echo", "openai"] = "extractive"
    max_sentences: int = Field(2, gt=0, le=50, description="sentences an extractive answer keeps")
    model: str = "gpt-4o-mini"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(512, gt=0, le=32_768)
    timeout_seconds: float = Field(30.0, gt=0, le=600)
    max_retries: int = Field(2, ge=0, le=10, description="retries with backoff on 429/5xx")
    prompt_template: str = DEFAULT_TEMPLATE

    @model_validator(mode="after")
    def _checks(self) -> GenerationConfig:
        if not ENV_NAME_RE.fullmatch(self.api_key_env):
            # a value like "sk-..." here would be a key pasted where its variable name belongs
            raise ValueError(
                "api_key_env must name the environment variable that holds the key (e.g. "
                "OPENAI_API_KEY), never the key itself"
            )
        fields = template_fields(self.prompt_template)
        if fields != TEMPLATE_FIELDS:
            raise ValueError(
                "prompt_template must use exactly the fields {context} and {question}, got "
                + (", ".join(f"{{{name}}}" for name in sorted(fields)) or "none")
            )
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        return self


class RagConfig(_Section):
    """The whole pipeline configuration.

    Example:
        >>> cfg = RagConfig.from_dict({"chunking": {"chunk_size": 500}, "retrieval": {"k": 3}})
        >>> cfg.chunking.chunk_overlap, cfg.retrieval.k
        (100, 3)
        >>> cfg.flatten()["chunking.chunk_size"]
        500
    """

    chunking: ChunkingConfig = ChunkingConfig()
    embedding: EmbeddingConfig = EmbeddingConfig()
    index: IndexConfig = IndexConfig()
    retrieval: RetrievalConfig = RetrievalConfig()
    generation: GenerationConfig = GenerationConfig()

    @model_validator(mode="after")
    def _chunks_fit_the_encoder(self) -> RagConfig:
        window = MINILM_MAX_TOKENS if self.embedding.model == MINILM_MODEL_ID else None
        if window and self.chunking.strategy != "recursive" and self.chunking.chunk_size > window:
            # the encoder would silently drop the end of every longer chunk
            raise ValueError(
                f"chunking.chunk_size {self.chunking.chunk_size} tokens is over "
                f"{self.embedding.model}'s {window}-token window; use at most {window}"
            )
        return self

    @model_validator(mode="after")
    def _sentences_for_retrieval(self) -> RagConfig:
        retrieval = self.retrieval
        wanted = [
            name
            for name, on in (
                ("retrieval.sentence_weight > 0", retrieval.sentence_weight > 0),
                (
                    f"retrieval.search_unit {retrieval.search_unit!r}",
                    retrieval.search_unit != "chunk",
                ),
            )
            if on
        ]
        if wanted and not self.index.sentence_vectors:
            raise ValueError(
                f"{' and '.join(wanted)} need(s) the chunks' sentence vectors; set "
                "index.sentence_vectors: true (the default)"
            )
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RagConfig:
        """Build a config from a (possibly partial) nested mapping.

        Raises:
            ConfigError: naming each unknown key or invalid field, e.g.
                ``retrieval.k: Input should be greater than 0 (got 0)`` or
                ``chunking: chunk_overlap must be less than chunk_size, ...``.
        """
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"config must be a mapping of sections, got {type(data).__name__}")
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> RagConfig:
        """Load overrides from a YAML file onto the defaults."""
        import yaml

        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"config file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 YAML"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"config file {path} is not valid YAML: {_yaml_problem(exc)}"
            ) from None
        try:
            return cls.from_dict({} if data is None else data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The full config as plain JSON-compatible data (what is stored in the model)."""
        return self.model_dump(mode="json")

    def flatten(self) -> dict[str, Any]:
        """``{"section.field": value}``, the form logged as MLflow run params."""
        return {
            f"{section}.{key}": value
            for section, fields in self.to_dict().items()
            for key, value in fields.items()
        }

    def with_overrides(self, flat: Mapping[str, Any]) -> RagConfig:
        """Return a new config with ``{"section.field": value}`` overrides applied."""
        data = self.to_dict()
        for dotted, value in flat.items():
            section, _, key = dotted.partition(".")
            if section not in data or not key:
                raise ConfigError(
                    f"unknown config key {dotted!r}; keys look like 'retrieval.k', sections are "
                    f"{', '.join(data)}"
                )
            data[section][key] = value
        return RagConfig.from_dict(data)


def _yaml_problem(exc: Exception) -> str:
    """PyYAML's multi-line message as one line: the problem and where it is."""
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def _describe(exc: ValidationError) -> str:
    """One line per problem, each naming the dotted field and what is allowed."""
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "config"
        if error["type"] == "extra_forbidden":
            lines.append(f"{field}: unknown key (check the spelling; see RagConfig for keys)")
            continue
        if error["type"] == "value_error":  # our own checks already quote the values
            lines.append(f"{field}: {error['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"{field}: {error['msg']} (got {error.get('input')!r})")
    return "invalid config: " + "; ".join(lines)
