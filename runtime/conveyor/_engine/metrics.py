"""Prometheus metrics with the reference's names, labels, help texts, types and buckets (luno/workflow
internal/metrics), recorded by the engine into the default registry so that any exporter of the process serves
them, and updated when the reference updates them:

- workflow_process_lag_seconds / workflow_process_lag_alert: per event received, before it is handled (the alert
  only when the process has a lag alert threshold > 0);
- workflow_process_states: the process's state, 3 Idle (waiting for its role), 2 Running, 1 Shutdown;
- workflow_process_latency_seconds: per event handled (or outbox event published, or timeout fired);
- workflow_process_error_count: per failed attempt (the event is retried after the back-off);
- workflow_process_skipped_events_count: per event acknowledged without acting, by reason;
- workflow_run_state_changes: per stored change of a run, previous and current run state as the reference names
  them (a step's first change of an initiated run counts from Running, as the reference's does).

conveyor_role_held is ours (the reference has none): 1 while this process holds the role, 0 once it let go.
conveyor_stranded_runs is ours too: the active runs at a status the running code has no step, callback or timeout
for, per status (its name, or its number when the code has no such status), served only by the holder of the
stranded-runs check (the system worker) and only for the statuses that have some.

The five updated per event or transition (lag, lag alert, latency, skipped events, run state changes) are plain
numbers served by a collector of ours (`Family`); the rest are prometheus_client's own objects. A scrape cannot
tell them apart."""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Final

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample

from conveyor._core.runstate import RunState
from conveyor._engine import tracing

WORKFLOW = "workflow_name"
PROCESS = "process_name"

COUNTER: Final = "counter"
GAUGE: Final = "gauge"
HISTOGRAM: Final = "histogram"


class Family:
    """A metric the engine updates for every event or transition, kept as plain numbers and turned into a
    Prometheus family only when scraped (a custom collector, as prometheus_client documents them).

    Why not a prometheus_client Counter, Gauge or Histogram: each update of one goes through a few Python calls and
    a lock, and the five families here were a tenth of the engine's instructions per transition. Here an update is
    an addition to a cell, a list held by the caller. The engine updates cells from event loops, never from a step's
    worker thread; a `Client` used from several threads at once could, in principle, have two threads add to one
    cell together, but CPython (with its GIL) does not switch threads inside `cell[0] += 1`. Making a cell, and
    reading them all for a scrape (another thread does), hold the family's lock.

    A histogram's cell holds the count of each bucket (not cumulative; the last is +Inf), then the sum."""

    def __init__(
        self,
        name: str,
        kind: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float] = (),
    ) -> None:
        self.name = name
        self.kind = kind
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.buckets = tuple(buckets)
        self.bounds = (*self.buckets, float("inf"))
        # `le` as prometheus_client writes it for these bounds ("0.01", "1.0", "+Inf").
        self._les = tuple("+Inf" if bound == float("inf") else repr(float(bound)) for bound in self.bounds)
        self._width = len(self.bounds) + 1 if kind == HISTOGRAM else 1
        self._lock = threading.Lock()
        self._cells: dict[tuple[str, ...], list[float]] = {}
        self._created: dict[tuple[str, ...], float] = {}

    def cell(self, *labels: str) -> list[float]:
        """The cell of one series, made (at zero) the first time it is asked for."""
        with self._lock:
            found = self._cells.get(labels)
            if found is None:
                found = self._cells[labels] = [0.0] * self._width
                self._created[labels] = time.time()
            return found

    def value(self, *labels: str) -> float | None:
        """The series' value (a histogram's count), None if it was never made."""
        with self._lock:
            found = self._cells.get(labels)
        if found is None:
            return None
        return sum(found[:-1]) if self.kind == HISTOGRAM else found[0]

    def family(self) -> Metric:
        with self._lock:
            series = [(labels, list(cell), self._created[labels]) for labels, cell in self._cells.items()]
        if self.kind == COUNTER:
            counter = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
            for labels, cell, created in series:
                counter.add_metric(labels, cell[0], created=created)
            return counter
        if self.kind == GAUGE:
            gauge = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
            for labels, cell, _ in series:
                gauge.add_metric(labels, cell[0])
            return gauge
        histogram = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, cell, created in series:
            cumulative, buckets = 0.0, []
            for le, count in zip(self._les, cell[:-1], strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            histogram.add_metric(labels, buckets, cell[-1])
            # As prometheus_client's own Histogram exposes it.
            histogram.samples.append(
                Sample(f"{self.name}_created", dict(zip(self.labelnames, labels, strict=True)), created)
            )
        return histogram

    def empty(self) -> Metric:
        if self.kind == COUNTER:
            return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        if self.kind == GAUGE:
            return GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)


def observe(family: Family, cell: list[float], seconds: float, count: int = 1) -> None:
    """`count` observations of `seconds` in a histogram's cell."""
    cell[bisect.bisect_left(family.bounds, seconds)] += count
    cell[-1] += seconds * count


class _Collector:
    """Serves the families above from the default registry, beside prometheus_client's own metrics."""

    def __init__(self, families: Sequence[Family]) -> None:
        self._families = tuple(families)

    def collect(self) -> Iterator[Metric]:
        for family in self._families:
            yield family.family()

    def describe(self) -> Iterator[Metric]:
        # Lets the registry refuse a second metric of one of these names, as it does for its own.
        for family in self._families:
            yield family.empty()


CONSUMER_LAG = Family(
    "workflow_process_lag_seconds",
    GAUGE,
    "lag between now and the current event timestamp in seconds",
    [WORKFLOW, PROCESS],
)
CONSUMER_LAG_ALERT = Family(
    "workflow_process_lag_alert",
    GAUGE,
    "Whether or not the consumer lag crosses its alert threshold",
    [WORKFLOW, PROCESS],
)
PROCESS_STATES = Gauge("workflow_process_states", "The current states of all the processes", [WORKFLOW, PROCESS])
PROCESS_LATENCY = Family(
    "workflow_process_latency_seconds",
    HISTOGRAM,
    "Event loop latency in seconds",
    [WORKFLOW, PROCESS],
    buckets=(0.01, 0.1, 1, 5, 10, 60, 300),
)
PROCESS_ERRORS = Counter("workflow_process_error_count", "Number of errors processing events", [WORKFLOW, PROCESS])
PROCESS_SKIPPED_EVENTS = Family(
    "workflow_process_skipped_events_count",
    COUNTER,
    "Number of events skipped by consumer",
    [WORKFLOW, PROCESS, "reason"],
)
RUN_STATE_CHANGES = Family(
    "workflow_run_state_changes",
    COUNTER,
    "The number of workflow run state changes going from state to a new state",
    [WORKFLOW, "previous_run_state", "current_run_state"],
)
REGISTRY.register(
    _Collector([CONSUMER_LAG, CONSUMER_LAG_ALERT, PROCESS_LATENCY, PROCESS_SKIPPED_EVENTS, RUN_STATE_CHANGES])
)
ROLE_HELD = Gauge("conveyor_role_held", "1 while this process holds the role", [WORKFLOW, "role"])
STRANDED_RUNS = Gauge(
    "conveyor_stranded_runs",
    "Active runs at a status that no step, callback or timeout of the running code moves",
    [WORKFLOW, "status"],
)


class WorkflowMetrics:
    """The metrics of one workflow, each series' cell cached for the hot path."""

    def __init__(self, workflow_name: str) -> None:
        self.workflow = workflow_name
        self._skipped: dict[tuple[str, str], list[float]] = {}
        self._latency: dict[str, list[float]] = {}
        self._changes: dict[tuple[RunState, RunState], list[float]] = {}
        self._lag: dict[str, list[float]] = {}
        self._alert: dict[str, list[float]] = {}

    def skipped(self, process: str, reason: str) -> None:
        cell = self._skipped.get((process, reason))
        if cell is None:
            cell = self._skipped[(process, reason)] = PROCESS_SKIPPED_EVENTS.cell(self.workflow, process, reason)
        cell[0] += 1
        # The reason reaches the span of the attempt that skipped, if it is traced.
        tracing.note_skipped(reason)

    def skipped_count(self, process: str, reason: str) -> float:
        return PROCESS_SKIPPED_EVENTS.value(self.workflow, process, reason) or 0.0

    def latency(self, process: str, seconds: float) -> None:
        cell = self._latency.get(process)
        if cell is None:
            cell = self._latency[process] = PROCESS_LATENCY.cell(self.workflow, process)
        cell[bisect.bisect_left(PROCESS_LATENCY.bounds, seconds)] += 1
        cell[-1] += seconds

    def latencies(self, process: str, seconds: float, count: int) -> None:
        """`count` events that were handled together in `seconds` (each took that long)."""
        if count <= 0:
            return
        cell = self._latency.get(process)
        if cell is None:
            cell = self._latency[process] = PROCESS_LATENCY.cell(self.workflow, process)
        observe(PROCESS_LATENCY, cell, seconds, count)

    def run_state_change(self, previous: RunState, current: RunState) -> None:
        """A stored change of a run from `previous` to `current`, labelled with the states' display names."""
        cell = self._changes.get((previous, current))
        if cell is None:
            cell = self._changes[(previous, current)] = RUN_STATE_CHANGES.cell(
                self.workflow, previous.label, current.label
            )
        cell[0] += 1

    def error(self, process: str) -> None:
        PROCESS_ERRORS.labels(self.workflow, process).inc()

    def state(self, process: str, value: int) -> None:
        PROCESS_STATES.labels(self.workflow, process).set(value)

    def role_held(self, role: str, held: bool) -> None:
        ROLE_HELD.labels(self.workflow, role).set(1 if held else 0)

    def stranded(self, status: str, count: int) -> None:
        """`count` stranded runs at `status` (a name, or a number the code does not know); 0 removes the series."""
        if count > 0:
            STRANDED_RUNS.labels(self.workflow, status).set(count)
        else:
            STRANDED_RUNS.remove(self.workflow, status)

    def lag(self, process: str, event_time: datetime, now: datetime, alert_after: float) -> None:
        """The age of the event `process` is about to handle; and, if it has a threshold, whether that is past it
        (without one the alert series is never made, as in the reference)."""
        cell = self._lag.get(process)
        if cell is None:
            cell = self._lag[process] = CONSUMER_LAG.cell(self.workflow, process)
        lag = (now - event_time).total_seconds()
        cell[0] = lag
        if alert_after > 0:
            alert = self._alert.get(process)
            if alert is None:
                alert = self._alert[process] = CONSUMER_LAG_ALERT.cell(self.workflow, process)
            alert[0] = 1 if lag > alert_after else 0
