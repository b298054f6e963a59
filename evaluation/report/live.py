"""What live traffic says about a version: traces served, latency, users' feedback. No MLflow.

``experiments.live_traffic`` reads the served traces from MLflow (the contract with serving:
tag ``rag.source=serving``, linked to the version's LoggedModel, users' feedback as a HUMAN
assessment named ``user_feedback``); this module only summarises what it found.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FEEDBACK_NAME = "user_feedback"
POSITIVE_RATING = 4  # on a 1-5 scale, 4 and 5 are positive; True is positive
# the metric names live traffic adds to a report (lower is better for latency)
LIVE_METRICS = (
    "live_traces",
    "live_latency_p50_ms",
    "live_latency_p95_ms",
    "live_feedback_count",
    "live_positive_share",
)


def is_positive(value: object) -> bool | None:
    """True/False for a thumbs value, ``>= 4`` for a 1-5 rating; None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and not math.isnan(value) and 1 <= value <= 5:
        return value >= POSITIVE_RATING
    return None


@dataclass(frozen=True)
class LiveTraffic:
    """A version's served traffic: trace count, latency percentiles, feedback."""

    traces: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    feedback_count: int
    positive_share: float | None

    def metrics(self) -> dict[str, float]:
        """As ``live_*`` metrics (those with no value, e.g. no feedback yet, left out)."""
        values = {
            "live_traces": float(self.traces),
            "live_latency_p50_ms": self.latency_p50_ms,
            "live_latency_p95_ms": self.latency_p95_ms,
            "live_feedback_count": float(self.feedback_count),
            "live_positive_share": self.positive_share,
        }
        return {name: float(value) for name, value in values.items() if value is not None}


def summarize(durations_ms: Sequence[float], feedback: Sequence[object]) -> LiveTraffic:
    """Summarise the served traces' durations and the feedback values found on them.

    Values that are neither a bool nor a 1-5 rating are not counted.
    """
    durations = np.asarray([d for d in durations_ms if d is not None], dtype=float)
    verdicts = [v for v in (is_positive(value) for value in feedback) if v is not None]
    return LiveTraffic(
        traces=len(durations_ms),
        latency_p50_ms=float(np.percentile(durations, 50)) if durations.size else None,
        latency_p95_ms=float(np.percentile(durations, 95)) if durations.size else None,
        feedback_count=len(verdicts),
        positive_share=sum(verdicts) / len(verdicts) if verdicts else None,
    )
