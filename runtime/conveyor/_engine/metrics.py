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
stranded-runs check (the system worker) and only for the statuses that have some."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram

from conveyor._engine import tracing

WORKFLOW = "workflow_name"
PROCESS = "process_name"

CONSUMER_LAG = Gauge(
    "workflow_process_lag_seconds",
    "lag between now and the current event timestamp in seconds",
    [WORKFLOW, PROCESS],
)
CONSUMER_LAG_ALERT = Gauge(
    "workflow_process_lag_alert",
    "Whether or not the consumer lag crosses its alert threshold",
    [WORKFLOW, PROCESS],
)
PROCESS_STATES = Gauge("workflow_process_states", "The current states of all the processes", [WORKFLOW, PROCESS])
PROCESS_LATENCY = Histogram(
    "workflow_process_latency_seconds",
    "Event loop latency in seconds",
    [WORKFLOW, PROCESS],
    buckets=(0.01, 0.1, 1, 5, 10, 60, 300),
)
PROCESS_ERRORS = Counter("workflow_process_error_count", "Number of errors processing events", [WORKFLOW, PROCESS])
PROCESS_SKIPPED_EVENTS = Counter(
    "workflow_process_skipped_events_count",
    "Number of events skipped by consumer",
    [WORKFLOW, PROCESS, "reason"],
)
RUN_STATE_CHANGES = Counter(
    "workflow_run_state_changes",
    "The number of workflow run state changes going from state to a new state",
    [WORKFLOW, "previous_run_state", "current_run_state"],
)
ROLE_HELD = Gauge("conveyor_role_held", "1 while this process holds the role", [WORKFLOW, "role"])
STRANDED_RUNS = Gauge(
    "conveyor_stranded_runs",
    "Active runs at a status that no step, callback or timeout of the running code moves",
    [WORKFLOW, "status"],
)


class WorkflowMetrics:
    """The metrics of one workflow, label lookups cached for the hot path."""

    def __init__(self, workflow_name: str) -> None:
        self.workflow = workflow_name
        self._skipped: dict[tuple[str, str], Counter] = {}
        self._latency: dict[str, Histogram] = {}
        self._changes: dict[tuple[str, str], Counter] = {}
        self._lag: dict[str, Gauge] = {}
        self._alert: dict[str, Gauge] = {}

    def skipped(self, process: str, reason: str) -> None:
        child = self._skipped.get((process, reason))
        if child is None:
            child = self._skipped[(process, reason)] = PROCESS_SKIPPED_EVENTS.labels(self.workflow, process, reason)
        child.inc()
        # The reason reaches the span of the attempt that skipped, if it is traced.
        tracing.note_skipped(reason)

    def skipped_count(self, process: str, reason: str) -> float:
        child = self._skipped.get((process, reason))
        return child._value.get() if child is not None else 0.0

    def latency(self, process: str, seconds: float) -> None:
        child = self._latency.get(process)
        if child is None:
            child = self._latency[process] = PROCESS_LATENCY.labels(self.workflow, process)
        child.observe(seconds)

    def latencies(self, process: str, seconds: float, count: int) -> None:
        """`count` events that were handled together in `seconds` (each took that long)."""
        child = self._latency.get(process)
        if child is None:
            child = self._latency[process] = PROCESS_LATENCY.labels(self.workflow, process)
        _observe_many(child, seconds, count)

    def run_state_change(self, previous: str, current: str) -> None:
        child = self._changes.get((previous, current))
        if child is None:
            child = self._changes[(previous, current)] = RUN_STATE_CHANGES.labels(self.workflow, previous, current)
        child.inc()

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
        child = self._lag.get(process)
        if child is None:
            child = self._lag[process] = CONSUMER_LAG.labels(self.workflow, process)
        lag = (now - event_time).total_seconds()
        child.set(lag)
        if alert_after > 0:
            alert = self._alert.get(process)
            if alert is None:
                alert = self._alert[process] = CONSUMER_LAG_ALERT.labels(self.workflow, process)
            alert.set(1 if lag > alert_after else 0)


def _observe_many(child: Histogram, seconds: float, count: int) -> None:
    """`count` observations of `seconds` at the cost of one: the relay publishes a batch of events that each took
    the batch's time, and observing them one by one was a tenth of the engine's CPU per transition. Falls back to
    one observe() each if prometheus_client's histogram ever stops keeping its buckets and sum as it does now."""
    try:
        bounds: list[float] = child._upper_bounds
        buckets = child._buckets
        total = child._sum
    except AttributeError:
        for _ in range(count):
            child.observe(seconds)
        return
    if count <= 0:
        return
    total.inc(seconds * count)
    for i, bound in enumerate(bounds):
        if seconds <= bound:
            buckets[i].inc(count)
            break
