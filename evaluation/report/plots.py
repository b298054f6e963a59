"""The report's plots as PNG bytes: metric trend across versions, recall@n curve, latency histogram.

Figures are built with ``matplotlib.figure.Figure`` and drawn by the Agg canvas directly, never
through pyplot: no GUI backend, no global figure registry, so plots can be rendered from any
thread (e.g. a server building reports) and nothing leaks between calls. Each function returns
``None`` when there is nothing to draw, and the report then says "not enough data".
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from evaluation.metrics import latency_percentiles
from evaluation.report.data import VersionPoint
from evaluation.report.format import version_sort_key

SIZE = (6.4, 3.6)  # inches; 768 x 432 px at DPI, shown two to a row in a 1280 px page
DPI = 120
# colour-blind-safe (Okabe-Ito), in the order lines are drawn
COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


def metric_trend(trend: Sequence[VersionPoint], metrics: Sequence[str]) -> bytes | None:
    """Plot each metric against the version number, one line per metric.

    Args:
        trend: the versions evaluated on one dataset, in any order (sorted here by version).
        metrics: names of the metrics to draw; those no point has are left out.

    Returns:
        PNG bytes, or ``None`` when no point has any of ``metrics``.
    """
    points = sorted(trend, key=lambda p: version_sort_key(p.version))
    names = [m for m in metrics if any(_finite(p.metrics.get(m)) for p in points)]
    if not names:
        return None
    figure, axes = _figure()
    positions = range(len(points))  # evenly spaced even when versions skip numbers
    for index, name in enumerate(names):
        ys = [p.metrics.get(name, math.nan) for p in points]
        axes.plot(positions, ys, marker="o", color=COLORS[index % len(COLORS)], label=name)
    axes.set_xticks(list(positions), [f"v{p.version}" for p in points])
    if len(points) == 1:
        axes.set_xlim(-1, 1)  # a single point would otherwise sit on a degenerate axis
    axes.set_xlabel("model version")
    axes.set_ylabel("score")
    axes.set_title("Metrics across versions (same dataset)")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    return _png(figure)


def recall_curve(curve: dict[int, float]) -> bytes | None:
    """Plot recall@n against n.

    Args:
        curve: ``{n: recall@n}``, document level.

    Returns:
        PNG bytes, or ``None`` when ``curve`` has no finite value.
    """
    items = sorted((n, r) for n, r in curve.items() if _finite(r))
    if not items:
        return None
    figure, axes = _figure()
    ns, recalls = zip(*items, strict=True)
    axes.plot(ns, recalls, marker="o", color=COLORS[0])
    axes.set_ylim(0, 1.05)
    axes.set_xticks(list(ns))
    axes.set_xlabel("n (documents retrieved)")
    axes.set_ylabel("recall@n")
    axes.set_title("Recall@n")
    return _png(figure)


def latency_histogram(latencies_ms: Sequence[float]) -> bytes | None:
    """Plot a histogram of per-question latencies with dashed p50 and p95 lines.

    Args:
        latencies_ms: one latency per question, in milliseconds.

    Returns:
        PNG bytes, or ``None`` when there is no finite latency.
    """
    values = [v for v in latencies_ms if _finite(v)]
    if not values:
        return None
    figure, axes = _figure()
    axes.hist(values, bins=min(30, max(5, len(values) // 3)), color=COLORS[4], edgecolor="white")
    # the same percentile definition as the latency metrics, so lines and table agree
    percentiles = latency_percentiles(values)
    for label, color in (("p50", COLORS[2]), ("p95", COLORS[5])):
        value = percentiles[f"latency_{label}_ms"]
        axes.axvline(value, color=color, linestyle="--", label=f"{label} {value:.1f} ms")
    axes.set_xlabel("latency (ms)")
    axes.set_ylabel("questions")
    axes.set_title(f"Latency per question ({len(values)} questions)")
    axes.legend(fontsize="small", frameon=False)
    return _png(figure)


def _figure():
    figure = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)  # attaches itself to the figure
    axes = figure.add_subplot()
    axes.grid(True, alpha=0.3)
    axes.spines[["top", "right"]].set_visible(False)
    return figure, axes


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
