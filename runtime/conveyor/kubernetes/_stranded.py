"""Stranded runs on Kubernetes: what the system worker and the operator must agree on to show them on a Workflow.

The system worker's stranded-runs check (an engine process) counts the active runs its code cannot move; the
worker's WorkflowRun mirror publishes the counts into the Workflow's `status.strandedRuns` (a merge patch of that
field alone, as for the graph, and only when they change; the field is removed once there are none), and the
operator, which has no user code, turns that field into the `Degraded` condition with reason `StrandedRuns` and
the counts in its message, until the field is gone. Nothing here imports the engine or the kubernetes client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

# The Workflow status field the system worker writes, and the Degraded reason the operator shows for it.
STRANDED_RUNS_FIELD: Final = "strandedRuns"
STRANDED_RUNS: Final = "StrandedRuns"
# Statuses published at most (the largest counts): the CRD's maxItems.
STRANDED_STATUSES_LIMIT: Final = 64


def stranded_entries(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A Workflow status's `strandedRuns` as the worker published them ({status, value, count, since}), the
    malformed entries left out (the CRD's schema refuses them; this reads whatever the API server holds)."""
    found = status.get(STRANDED_RUNS_FIELD)
    if not isinstance(found, list):
        return []
    return [
        dict(each)
        for each in found
        if isinstance(each, Mapping)
        and isinstance(each.get("status"), str)
        and isinstance(each.get("count"), int)
        and each["count"] > 0
    ]


def stranded_message(entries: list[dict[str, Any]]) -> str | None:
    """The Degraded condition's message for `entries` (`stranded_entries`), None when there are none: how many
    runs wait at which status (its name, or its number when the running code has no such status) since when, and
    what to do."""
    if not entries:
        return None
    total = sum(int(each["count"]) for each in entries)
    where = ", ".join(_where(each) for each in entries)
    return (
        f"{total} active run{'' if total == 1 else 's'} at statuses that no step, callback or timeout of the running "
        f"code moves: {where}; put the step back until they drain, or move them (conveyor runs fork)"
    )


def _where(entry: Mapping[str, Any]) -> str:
    name, value, since = entry["status"], entry.get("value"), entry.get("since")
    status = name if value is None or str(value) == name else f"{name} ({value})"
    return f"{entry['count']} at {status}" + (f" since {since}" if since else "")
