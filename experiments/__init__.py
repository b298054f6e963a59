"""The ``mlflow run`` entry points and the ``rag-model`` command.

This package holds programs, not a library, so importing it sets the offline switches
(``rag_model.offline``) for the process: ``python -m experiments.cli`` and the ``rag-model``
script import it before any of its modules imports huggingface_hub, ragas or mlflow, which read
those switches when they are imported.
"""

from rag_model.offline import apply_offline_defaults

apply_offline_defaults()
