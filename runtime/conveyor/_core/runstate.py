"""The lifecycle of a run (RunState) and the only transitions between its states that are allowed.

The values and the transition table are the reference's (luno/workflow runstate.go): stores, events and
other languages' clients rely on the integers.
"""

from __future__ import annotations

import enum


class RunState(enum.IntEnum):
    UNKNOWN = 0
    INITIATED = 1
    RUNNING = 2
    PAUSED = 3
    CANCELLED = 4
    COMPLETED = 5
    DATA_DELETED = 6
    REQUESTED_DATA_DELETED = 7

    @property
    def label(self) -> str:
        """The reference's display name ("Requested Data Deleted"), also used in role names."""
        return _LABELS[self]

    def valid(self) -> bool:
        return self is not RunState.UNKNOWN

    def finished(self) -> bool:
        """A finished run no longer blocks a new run for its foreign id."""
        return self in _FINISHED

    def stopped(self) -> bool:
        """Consumers ignore stopped runs: their events are acknowledged and skipped."""
        return self in _STOPPED

    def can_become(self, target: RunState) -> bool:
        return target in RUN_STATE_TRANSITIONS.get(self, frozenset())


_LABELS = {
    RunState.UNKNOWN: "Unknown",
    RunState.INITIATED: "Initiated",
    RunState.RUNNING: "Running",
    RunState.PAUSED: "Paused",
    RunState.CANCELLED: "Cancelled",
    RunState.COMPLETED: "Completed",
    RunState.DATA_DELETED: "Data Deleted",
    RunState.REQUESTED_DATA_DELETED: "Requested Data Deleted",
}

_FINISHED = frozenset({RunState.COMPLETED, RunState.CANCELLED, RunState.REQUESTED_DATA_DELETED, RunState.DATA_DELETED})
_STOPPED = frozenset({RunState.PAUSED, RunState.CANCELLED, RunState.REQUESTED_DATA_DELETED, RunState.DATA_DELETED})

# The reference's table. INITIATED -> PAUSED is in its code though not in its diagram: a run whose first step
# keeps failing is paused before it ever ran successfully.
RUN_STATE_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.INITIATED: frozenset({RunState.RUNNING, RunState.PAUSED}),
    RunState.RUNNING: frozenset({RunState.COMPLETED, RunState.PAUSED, RunState.CANCELLED}),
    RunState.PAUSED: frozenset({RunState.RUNNING, RunState.CANCELLED}),
    RunState.COMPLETED: frozenset({RunState.REQUESTED_DATA_DELETED}),
    RunState.CANCELLED: frozenset({RunState.REQUESTED_DATA_DELETED}),
    RunState.REQUESTED_DATA_DELETED: frozenset({RunState.DATA_DELETED}),
    RunState.DATA_DELETED: frozenset({RunState.REQUESTED_DATA_DELETED}),
}
