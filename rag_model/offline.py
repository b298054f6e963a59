"""Environment switches that keep every library offline and quiet, set before they import."""

import os

# Each is a default only: a user who exports a different value keeps it.
OFFLINE_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",  # the embedder ships inside the model; never ask a hub
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",  # log_model otherwise looks up a telemetry host
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # one bar per file floods server logs
    "RAGAS_DO_NOT_TRACK": "true",  # ragas otherwise makes ~20 analytics calls
    "ANONYMIZED_TELEMETRY": "False",  # chromadb's own switch, read from the environment
    "TOKENIZERS_PARALLELISM": "false",  # its thread pool does not survive gunicorn's fork
}


def apply_offline_defaults() -> None:
    """Set the offline switches in ``os.environ`` unless the user already chose a value."""
    for name, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(name, value)
