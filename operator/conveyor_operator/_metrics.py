"""The operator's own Prometheus metrics, served on its `/metrics` beside the process's defaults: whether this
replica leads (so an alert can say "no operator is leading"), and how its reconciles go, per kind and result (so
an alert can say "reconciles keep failing"). The workers' metrics are the engine's; these are only the operator's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram

LEADER = Gauge(
    "conveyor_operator_leader",
    "1 while this operator replica reconciles (it holds the leader Lease, or runs without leader election)",
)
RECONCILES = Counter(
    "conveyor_operator_reconciles",
    "Reconciles of Workflows and WorkflowRuns by this replica, by kind and result (success or error)",
    ["kind", "result"],
)
RECONCILE_SECONDS = Histogram(
    "conveyor_operator_reconcile_duration_seconds",
    "How long one reconcile took, by kind",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30),
)


def leading(state: str) -> None:
    """The operator's state as `_main` reports it: "leading" or "running" reconcile; anything else does not."""
    LEADER.set(1 if state in ("leading", "running") else 0)


@contextmanager
def reconciling(kind: str) -> Iterator[None]:
    """Count and time one reconcile of `kind` (Workflow or WorkflowRun): an exception out of it is an error."""
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        RECONCILES.labels(kind, "error").inc()
        raise
    else:
        RECONCILES.labels(kind, "success").inc()
    finally:
        RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - started)
