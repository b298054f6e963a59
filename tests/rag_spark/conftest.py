"""One local[2] SparkSession per test module: the JVM and Python workers take seconds to start."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """A local[2] session bound to 127.0.0.1, no UI, 2 shuffle partitions (rag_spark.session).

    Fails with the fix when pyspark or Java is missing: these tests never skip.
    """
    from rag_spark.session import spark_session

    session = spark_session("local[2]", app_name="rag-model-tests")
    yield session
    session.stop()
