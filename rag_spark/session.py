"""A SparkSession for rag-model jobs: local by default, bound to 127.0.0.1, no UI."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from rag_model.errors import RagError
from rag_model.offline import OFFLINE_DEFAULTS, apply_offline_defaults

DEFAULT_MASTER = "local[2]"
MASTER_ENV = "RAG_SPARK_MASTER"


class SparkSetupError(RagError):
    """Spark cannot start here: pyspark or Java is missing."""


def spark_session(
    master: str | None = None, app_name: str = "rag-model", shuffle_partitions: int = 2
) -> Any:
    """Get or create the SparkSession rag-model jobs run on.

    Args:
        master: the Spark master; default ``$RAG_SPARK_MASTER`` or ``local[2]``.
        app_name: the application name Spark shows.
        shuffle_partitions: ``spark.sql.shuffle.partitions`` (Spark's 200 suits clusters, not
            a laptop).

    Returns:
        A ``pyspark.sql.SparkSession``.

    Raises:
        SparkSetupError: pyspark is not installed or no Java runtime is found.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkSetupError(
            f"Spark jobs need pyspark ({exc}); run 'pip install rag-model[spark]'"
        ) from None
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        raise SparkSetupError(
            "Spark needs a Java 17 runtime and none was found (no java on PATH, no JAVA_HOME); "
            "install one, e.g. 'apt-get install openjdk-17-jre-headless'"
        )
    # a Spark job is a program: the driver sets the offline switches before the JVM starts (local
    # executors inherit them) and passes them on to executors elsewhere (executorEnv below)
    apply_offline_defaults()
    # executors must run this interpreter: it has rag_model, mlflow and torch installed
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master or os.environ.get(MASTER_ENV) or DEFAULT_MASTER)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        # one Python worker per core already uses every core: torch's own thread pool on top
        # of that only oversubscribes them
        .config("spark.executorEnv.OMP_NUM_THREADS", "1")
    )
    for name in OFFLINE_DEFAULTS:
        builder = builder.config(f"spark.executorEnv.{name}", os.environ[name])
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
