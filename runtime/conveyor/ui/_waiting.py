"""Where runs wait: a workflow's active runs per status and run state (RecordStore.count_active, read from the
index of unfinished runs), how long the longest-waiting of them has not moved, and whether that is over the lag
alert of the status's step; and the path one run took through the graph, from its history. Shaped here once, as
JSON-ready data, so the workflow page, its JSON twin under /api and the graph's colouring read the same numbers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from conveyor._core.ports import StatusCount
from conveyor._core.records import Record
from conveyor._core.runstate import RunState
from conveyor._engine.options import Options, resolve
from conveyor._engine.spec import WorkflowSpec

ACTIVE = (RunState.INITIATED, RunState.RUNNING, RunState.PAUSED)
# The paused runs the workflow page lists (newest first); the runs list has the rest.
PAUSED_SHOWN = 10


def status_name(spec: WorkflowSpec[Any, Any], status: int) -> str | None:
    """The status's name, or None for a number the code no longer has (runs may still sit at it)."""
    try:
        return str(spec.status_type(status).name)
    except ValueError:
        return None


def lag_alert(spec: WorkflowSpec[Any, Any], status: int) -> float | None:
    """Seconds a run may wait at `status` before its step's consumer is lagging, as the step's consumer resolves
    its options (the reference's default of 30 minutes, moved by a consume lag). None where no step consumes the
    status: a run waiting for a callback or a timer, or at the end, is not lagging however long it waits. Options
    given to `build()` only (default_options) are not in the spec the UI has, so the step's own or the default."""
    step = spec.steps.get(status)
    if step is None:
        return None
    return resolve(step.options, Options()).lag_alert


def _age(now: datetime, oldest: datetime) -> float:
    # A clock a little behind the database's (another host) must not show a negative wait.
    return round(max(0.0, (now - oldest).total_seconds()), 3)


def status_rows(spec: WorkflowSpec[Any, Any], counts: Sequence[StatusCount], now: datetime) -> list[dict[str, Any]]:
    """Every status of the graph, in the graph's order, then any other status active runs sit at (by number),
    each with its count per active run state, the age of the oldest and whether it is over the lag alert."""
    found: dict[int, dict[RunState, StatusCount]] = {}
    for each in counts:
        found.setdefault(each.status, {})[each.run_state] = each
    known = list(spec.graph.nodes)
    order = known + sorted(set(found) - set(known))
    rows: list[dict[str, Any]] = []
    for status in order:
        alert = lag_alert(spec, status)
        states: list[dict[str, Any]] = []
        for state in ACTIVE:
            count = found.get(status, {}).get(state)
            age = _age(now, count.oldest) if count is not None else None
            states.append(
                {
                    "run_state": state.name,
                    "count": count.count if count is not None else 0,
                    "oldest": count.oldest.astimezone(UTC).isoformat() if count is not None else None,
                    "age_seconds": age,
                    "over_lag_alert": alert is not None and age is not None and age > alert,
                }
            )
        ages = [s["age_seconds"] for s in states if s["age_seconds"] is not None]
        oldest = [s["oldest"] for s in states if s["oldest"] is not None]
        rows.append(
            {
                "status": status,
                "status_name": status_name(spec, status),
                "in_graph": status in known,
                "lag_alert_seconds": alert,
                "active": sum(s["count"] for s in states),
                "oldest": min(oldest, key=datetime.fromisoformat) if oldest else None,
                "age_seconds": max(ages) if ages else None,
                "over_lag_alert": any(s["over_lag_alert"] for s in states),
                "run_states": states,
            }
        )
    return rows


def path(spec: WorkflowSpec[Any, Any] | None, history: Sequence[Record]) -> list[dict[str, Any]]:
    """The run's path as data: each status visited, in order, with its name where `spec` has it."""
    return [{"status": s, "status_name": status_name(spec, s) if spec else None} for s in visited(history)]


def visited(history: Sequence[Record]) -> list[int]:
    """The statuses a run visited, in order, from its history (oldest first): a version that changed only the run
    state (paused, resumed) stays at its status, so repeats in a row are one visit."""
    statuses: list[int] = []
    for version in history:
        if not statuses or statuses[-1] != version.status:
            statuses.append(version.status)
    return statuses
