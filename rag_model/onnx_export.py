"""Build time only: export the bundled MiniLM to ONNX (optionally int8) for the onnx backends.

Serving never runs this export: a model logged with ``embedding.backend: onnx`` carries the
exported file in its artifacts (``artifacts/embedder/model.onnx``, sha256 in the embedder
manifest) and runs it with onnxruntime, without torch. The export needs torch, transformers
and onnx, which the build environment has anyway.
"""

from __future__ import annotations

import atexit
import functools
import logging
import shutil
import tempfile
import warnings
from pathlib import Path

from rag_model.errors import EmbedderError
from rag_model.minilm import ONNX_MODEL_FILE, ONNX_TOKENIZER_FILE, bundled_minilm_dir

ONNX_OPSET = 17
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
ONNX_OUTPUT = "last_hidden_state"


def export_minilm_onnx(model_dir: Path, destination: Path, quantize: bool = False) -> Path:
    """Write ``destination`` (an .onnx file) from the MiniLM weights in ``model_dir``.

    The graph takes the three BERT inputs with dynamic batch and sequence axes and returns the
    token states; pooling and normalisation happen in numpy (``OnnxEmbedder``). The export is
    deterministic: the same weights give the same bytes.

    Args:
        model_dir: a folder with the verified MiniLM files (``bundled_minilm_dir()``).
        destination: the .onnx file to write.
        quantize: also quantize the weights to int8 (dynamic quantization, QInt8): faster,
            at a measured quality cost (``bench/beir_scifact.py --backend onnx-int8``).

    Raises:
        EmbedderError: torch, transformers or onnx is missing.
    """
    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise EmbedderError(
            f"exporting MiniLM to ONNX needs torch, transformers and onnx ({exc}); install "
            "the torch extra: 'pip install torch==2.13.0' then 'pip install rag-model[torch]'"
        ) from exc

    class _Keywords(torch.nn.Module):
        # transformers 5 refuses positional inputs, and the exporter passes them positionally
        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001, D102
            return self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    destination.parent.mkdir(parents=True, exist_ok=True)
    bert = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
    example = torch.ones(2, 8, dtype=torch.long)
    target = destination.with_suffix(".fp32.onnx") if quantize else destination
    # the tracer warns about Python control flow it records as constants (shapes of the
    # example); the dynamic axes cover what varies, and the tests compare outputs to torch
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Keywords(bert),
            (example, example, torch.zeros_like(example)),
            str(target),
            input_names=list(ONNX_INPUTS),
            output_names=[ONNX_OUTPUT],
            dynamic_axes={
                name: {0: "batch", 1: "sequence"} for name in (*ONNX_INPUTS, ONNX_OUTPUT)
            },
            opset_version=ONNX_OPSET,
            dynamo=False,  # the TorchScript exporter: no onnxscript needed, ~2 s
        )
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quiet = logging.getLogger()  # it logs a pre-processing hint on the root logger
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            quantize_dynamic(str(target), str(destination), weight_type=QuantType.QInt8)
        finally:
            quiet.setLevel(level)
        target.unlink()
    return destination


@functools.cache
def exported_minilm_dir(quantize: bool) -> Path:
    """The bundled MiniLM as an onnx backend folder, made once per process (temporary).

    The build embeds chunks with it and ``log_rag_model`` ships its files
    (``ONNX_EMBEDDER_FILES``).
    """
    source = bundled_minilm_dir()
    folder = Path(tempfile.mkdtemp(prefix="rag-model-onnx-"))
    atexit.register(shutil.rmtree, folder, True)
    shutil.copyfile(source / ONNX_TOKENIZER_FILE, folder / ONNX_TOKENIZER_FILE)
    export_minilm_onnx(source, folder / ONNX_MODEL_FILE, quantize=quantize)
    return folder
