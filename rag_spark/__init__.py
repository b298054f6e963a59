"""rag-model on Spark: batch scoring through ``spark_udf``, and index builds on executors.

Nothing here imports pyspark at import time: each module imports it inside the functions that
need it, so ``rag_model`` and the experiments load without Spark (or Java) installed.
"""
