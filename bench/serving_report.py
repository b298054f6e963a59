"""The serving benchmark's arithmetic and tables: run order, medians, targets (no I/O).

``bench/serving_vs_mlflow.py`` measures; this module turns its trials into the printed
Markdown, so the logic is tested on made-up numbers (tests/bench/test_serving_report.py).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from bench.loadgen import LoadResult

SERVERS = {
    "a": "(a) ours, default config, gunicorn",
    "b": "(b) mlflow models serve, same version",
    "c": "(c) seed-style pyfunc, mlflow models serve",
}


@dataclass(frozen=True)
class Level:
    """One load level of one trial."""

    rate: float
    p50: float
    p99: float
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    first_error: str = ""

    @classmethod
    def from_load(cls, load: LoadResult) -> Level:
        return cls(
            rate=load.rate,
            p50=load.percentile(0.5),
            p99=load.percentile(0.99),
            errors=load.errors,
            error_kinds=dict(load.error_kinds),
            first_error=load.first_error,
        )


@dataclass
class Trial:
    """One start of one server: start-up, memory and one Level per client count."""

    server: str
    repeat: int
    start_seconds: float = float("nan")
    tree_rss: float = float("nan")
    levels: dict[int, Level] = field(default_factory=dict)
    load_average: float = float("nan")
    client_cpu: float = float("nan")  # the load generator's CPU while measuring, in cores


@dataclass(frozen=True)
class Median:
    """The median over a server's trials at one level (errors: the sum)."""

    rate: float
    p50: float
    p99: float
    errors: int
    rate_min: float
    rate_max: float
    trials: int


def run_order(servers: Sequence[str], repeats: int) -> list[tuple[int, str]]:
    """(repeat, server) in alternating order: a b c, then c b a, then a b c ...

    Each server is first, then last, so a drift in the machine's load over the run (another
    job starting, the CPU warming) does not favour the server that always runs first.
    """
    order = []
    for repeat in range(repeats):
        names = list(servers) if repeat % 2 == 0 else list(reversed(servers))
        order.extend((repeat, name) for name in names)
    return order


def _median(values: Iterable[float]) -> float:
    data = [value for value in values if value == value]  # drop nan
    return statistics.median(data) if data else float("nan")


def medians(trials: Sequence[Trial]) -> dict[str, dict[int, Median]]:
    """Per server and client count, the medians over its trials."""
    grouped: dict[str, dict[int, list[Level]]] = {}
    for trial in trials:
        for clients, level in trial.levels.items():
            grouped.setdefault(trial.server, {}).setdefault(clients, []).append(level)
    out: dict[str, dict[int, Median]] = {}
    for server, by_clients in grouped.items():
        for clients, levels in by_clients.items():
            rates = [level.rate for level in levels]
            out.setdefault(server, {})[clients] = Median(
                rate=_median(rates),
                p50=_median(level.p50 for level in levels),
                p99=_median(level.p99 for level in levels),
                errors=sum(level.errors for level in levels),
                rate_min=min(rates),
                rate_max=max(rates),
                trials=len(levels),
            )
    return out


def per_server(trials: Sequence[Trial], value: Callable[[Trial], float]) -> dict[str, float]:
    """The median of ``value(trial)`` per server."""
    grouped: dict[str, list[float]] = {}
    for trial in trials:
        grouped.setdefault(trial.server, []).append(value(trial))
    return {server: _median(values) for server, values in grouped.items()}


@dataclass(frozen=True)
class Check:
    """One row of the ratio table: a measured value against its target."""

    name: str
    clients: str
    value: float
    at_least: float | None = None
    at_most: float | None = None
    unit: str = "x"

    @property
    def passed(self) -> bool | None:
        if self.value != self.value:  # nan: not measured
            return None
        if self.at_least is not None and self.value < self.at_least:
            return False
        return not (self.at_most is not None and self.value > self.at_most)

    @property
    def target(self) -> str:
        bound = self.at_least if self.at_least is not None else self.at_most
        sign = ">=" if self.at_least is not None else "<="
        return f"{sign} {self._show(bound or 0.0)}"

    @property
    def shown(self) -> str:
        return self._show(self.value)

    def _show(self, value: float) -> str:
        if not self.unit:  # a count
            return f"{value:.0f}"
        return f"{value:.0f}{self.unit}" if value >= 1000 else f"{value:.2f}{self.unit}"

    @property
    def verdict(self) -> str:
        return {True: "pass", False: "**miss**", None: "n/a"}[self.passed]


def _ratio(top: float, bottom: float) -> float:
    return top / bottom if bottom and bottom == bottom and top == top else float("nan")


def checks(
    table: dict[str, dict[int, Median]],
    starts: dict[str, float],
    levels: Sequence[int],
    ceiling: float | None,
) -> list[Check]:
    """The targets of issue 14 that this run's servers and levels can answer.

    For latencies the ratio is (a)'s over the other's, so "1.3x faster" is <= 1/1.3 = 0.77x.
    """
    a, b, c = table.get("a"), table.get("b"), table.get("c")
    rows: list[Check] = []
    if a and c:
        if 16 in levels:
            rows.append(Check("(a)/(c) req/s", "16", _ratio(a[16].rate, c[16].rate), at_least=3))
            rows.append(Check("(a)/(c) p99", "16", _ratio(a[16].p99, c[16].p99), at_most=0.25))
        if 1 in levels:
            rows.append(Check("(a)/(c) req/s", "1", _ratio(a[1].rate, c[1].rate), at_least=1.5))
    if a and b:
        for clients in levels:
            speed_up = 1.3 if clients == 16 else 1.0
            x, y = a[clients], b[clients]
            rows.append(
                Check("(a)/(b) req/s", str(clients), _ratio(x.rate, y.rate), at_least=speed_up)
            )
            for name in ("p50", "p99"):
                rows.append(
                    Check(
                        f"(a)/(b) {name}",
                        str(clients),
                        _ratio(getattr(x, name), getattr(y, name)),
                        at_most=1 / speed_up,
                    )
                )
    if a and ceiling and 16 in levels:
        rows.append(Check("(a) req/s / in-process ceiling", "16", a[16].rate / ceiling, 0.85))
    if "a" in starts:
        rows.append(Check("(a) start to first answer", "-", starts["a"], at_most=4, unit=" s"))
    errors = sum(median.errors for by_level in table.values() for median in by_level.values())
    rows.append(Check("errors, all servers and runs", "all", errors, at_most=0, unit=""))
    return rows


@dataclass(frozen=True)
class Ceiling:
    """One timing of single-thread ``pipeline.answer`` on the benchmark's questions.

    The ceiling is the median ``per_thread`` over the timings, times ``cores``.
    """

    questions: int
    seconds: float
    cores: int

    @property
    def per_thread(self) -> float:
        return self.questions / self.seconds


def report(
    trials: Sequence[Trial],
    levels: Sequence[int],
    ceilings: Sequence[Ceiling] = (),
    header: Sequence[str] = (),
) -> str:
    """The Markdown tables (medians, start and memory, ratios against targets, every trial)."""
    table = medians(trials)
    starts = per_server(trials, lambda trial: trial.start_seconds)
    memory = per_server(trials, lambda trial: trial.tree_rss)
    servers = [key for key in SERVERS if key in table]
    repeats = max((trial.repeat + 1 for trial in trials), default=0)
    lines = list(header)
    lines += [
        "",
        f"Medians of {repeats} run(s) per server (req/s: median, and min-max over the runs).",
        "",
        "| server | clients | req/s | req/s min-max | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for server in servers:
        for clients in levels:
            m = table[server].get(clients)
            if m is None:
                continue
            lines.append(
                f"| {SERVERS[server]} | {clients} | {m.rate:.1f} | {m.rate_min:.1f}-"
                f"{m.rate_max:.1f} | {m.p50:.1f} | {m.p99:.1f} | {m.errors} |"
            )
    lines += [
        "",
        "| server | start to first answer s | process tree RSS MiB (sum) |",
        "|---|---|---|",
    ]
    for server in servers:
        lines.append(f"| {SERVERS[server]} | {starts[server]:.1f} | {memory[server]:.0f} |")
    ceiling = None
    if ceilings:
        per_thread = _median(run.per_thread for run in ceilings)
        ceiling = per_thread * ceilings[0].cores
        rates = ", ".join(f"{run.per_thread:.1f}" for run in ceilings)
        lines += [
            "",
            f"In-process ceiling: single-thread `pipeline.answer` {per_thread:.1f} questions/s "
            f"(median of {len(ceilings)}, one before each round of runs: {rates}) x "
            f"{ceilings[0].cores} cores = {ceiling:.1f} questions/s.",
        ]
    lines += [
        "",
        "Ratios are (a)'s value over the other server's: for p50 and p99 lower is better, and",
        "1.3x faster is <= 0.77x.",
        "",
        "| ratio | clients | value | target | verdict |",
        "|---|---|---|---|---|",
    ]
    for check in checks(table, starts, levels, ceiling):
        lines.append(
            f"| {check.name} | {check.clients} | {check.shown} | {check.target} | {check.verdict} |"
        )
    lines += [
        "",
        "Every run, in the order run (req/s per client count; the load average at its end; the",
        "load generator's own CPU while measuring, in cores):",
        "",
        "| # | server | start s | "
        + " | ".join(f"c={c}" for c in levels)
        + " | load avg | client CPU |",
        "|---|---|---|" + "---|" * len(levels) + "---|---|",
    ]
    for number, trial in enumerate(trials, 1):
        rates = " | ".join(
            f"{trial.levels[c].rate:.1f}" if c in trial.levels else "-" for c in levels
        )
        lines.append(
            f"| {number} | {trial.server} | {trial.start_seconds:.1f} | {rates} | "
            f"{trial.load_average:.2f} | {trial.client_cpu:.2f} |"
        )
    for trial in trials:
        for clients, level in trial.levels.items():
            if level.errors:
                lines.append(
                    f"\n{SERVERS[trial.server]}, run {trial.repeat + 1}, {clients} clients: "
                    f"{level.errors} errors {level.error_kinds}; first: {level.first_error}"
                )
    return "\n".join(lines)
