"""Read a version's live traffic from the MLflow traces the server recorded.

The contract with serving: a served trace has tag ``rag.source=serving`` and tags
``rag.model_name`` / ``rag.model_version``, is linked to the version's LoggedModel, and users'
feedback on it is an assessment named ``user_feedback`` (bool, or a 1-5 rating) from a HUMAN
source. Evaluation traces (``rag.source=evaluation``) are linked to the same LoggedModel and
must not count, hence the tag filter.
"""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.entities import AssessmentSourceType, Feedback, ViewType

from evaluation.report.live import FEEDBACK_NAME, LiveTraffic, summarize
from rag_model.packaging.registry import model_id_of

SOURCE_TAG = "rag.source"
SERVING = "serving"


def live_traffic(model_name: str, version: str, client: MlflowClient | None = None) -> LiveTraffic:
    """What the served traces of ``version`` say: count, p50/p95 latency, feedback.

    Traces are searched in every active experiment (the server may write to its own,
    ``RAG_TRACE_EXPERIMENT``) by the version's LoggedModel id; a version without one is
    searched by its name and version tags.
    """
    import mlflow

    client = client or MlflowClient()
    model_id = model_id_of(client.get_model_version(model_name, version))
    experiments = [e.experiment_id for e in client.search_experiments(ViewType.ACTIVE_ONLY)]
    conditions = [f"tags.`{SOURCE_TAG}` = '{SERVING}'"]
    if model_id:  # search_traces refuses model_id= beside a filter: it is this condition
        conditions.append(f"request_metadata.`mlflow.modelId` = '{model_id}'")
    else:
        conditions += [
            f"tags.`rag.model_name` = '{_quoted(model_name)}'",
            f"tags.`rag.model_version` = '{_quoted(version)}'",
        ]
    traces = mlflow.search_traces(
        locations=experiments,
        filter_string=" AND ".join(conditions),
        include_spans=False,
        return_type="list",
    )
    durations = [t.info.execution_time_ms for t in traces if t.info.execution_time_ms is not None]
    feedback = [
        assessment.value
        for trace in traces
        for assessment in trace.info.assessments or []
        if _is_user_feedback(assessment)
    ]
    return summarize(durations, feedback)


def _is_user_feedback(assessment: object) -> bool:
    source = getattr(assessment, "source", None)
    return (
        isinstance(assessment, Feedback)
        and assessment.name == FEEDBACK_NAME
        and assessment.error is None
        and getattr(assessment, "valid", True) is not False  # overridden by a later one
        and source is not None
        and source.source_type == AssessmentSourceType.HUMAN
    )


def _quoted(value: str) -> str:
    return value.replace("'", "\\'")
