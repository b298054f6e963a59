"""The models-from-code entry file MLflow stores with each version and runs at load time.

It is the first of our code that runs in a process MLflow starts (``mlflow models serve``,
``spark_udf`` workers), so it sets the offline switches there before the model loads.
"""

from rag_model.offline import apply_offline_defaults

apply_offline_defaults()

import mlflow  # noqa: E402

from rag_model.packaging.pyfunc_model import RagPyfuncModel  # noqa: E402

mlflow.models.set_model(RagPyfuncModel())
