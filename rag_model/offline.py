"""Environment switches that keep every library offline and quiet, set before they import.

A library must not change its caller's environment, so importing ``rag_model`` does not set
them: every program does, first thing, before it imports a library that reads them. Those
programs are the ``experiments`` entry points (the package's ``__init__``), the server
(``create_app`` and the gunicorn config), the Spark session and its executors, the
models-from-code file MLflow runs when it loads a version (``mlflow models serve``,
``spark_udf``), the benchmarks and the test suite.
"""

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
