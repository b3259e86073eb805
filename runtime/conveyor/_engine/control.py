"""Changing a run's state with nothing but its record store: what the UI and the CLI use, since they have no
running workflow (the reference's RunStateController). The new record and its outbox event are written in one
transaction under a version check, exactly as the engine writes a step's outcome, so a worker that acts on the
run meanwhile makes this attempt retry instead of being overwritten."""

from __future__ import annotations

from conveyor._core.clock import Clock, SystemClock
from conveyor._core.ports import RecordStore
from conveyor._core.records import Meta, Record
from conveyor._core.runstate import RunState
from conveyor._engine.metrics import RUN_STATE_CHANGES
from conveyor.errors import InvalidInput, InvalidTransition, VersionConflict

_ATTEMPTS = 5

# The user-facing verbs and the run state each asks for; "delete" requests deletion of the run's data.
ACTIONS: dict[str, RunState] = {
    "pause": RunState.PAUSED,
    "resume": RunState.RUNNING,
    "cancel": RunState.CANCELLED,
    "delete": RunState.REQUESTED_DATA_DELETED,
}


async def control_run(
    store: RecordStore,
    run_id: str,
    target: RunState,
    reason: str = "",
    *,
    clock: Clock | None = None,
) -> Record:
    """Move the run to `target` (PAUSED, RUNNING, CANCELLED or REQUESTED_DATA_DELETED) and return the stored
    record. RecordNotFound for an unknown run, InvalidTransition when its state cannot become `target` (nothing
    is written), VersionConflict if the run kept changing under every attempt."""
    if target not in ACTIONS.values():
        raise InvalidInput("target", f"one of {', '.join(s.name for s in ACTIONS.values())}", target)
    if not isinstance(reason, str) or len(reason) > 1024:
        raise InvalidInput("reason", "a string of at most 1024 characters", reason)
    now = (clock or SystemClock()).now
    before: Record | None = None
    for _ in range(_ATTEMPTS):
        before = await store.lookup(run_id)
        if not before.run_state.can_become(target):
            raise InvalidTransition(run_id, before.run_state.name, target.name)
        meta = before.meta
        after = Record(
            before.workflow_name,
            before.foreign_id,
            before.run_id,
            target,
            before.status,
            before.object,
            before.created_at,
            now(),
            Meta(reason, meta.status_description, meta.version + 1, meta.trace_origin),
        )
        try:
            await store.store(after, expected_version=meta.version)
        except VersionConflict:
            continue
        # The state as stored, as the reference's RunStateController counts it on a record it looked up.
        RUN_STATE_CHANGES.labels(before.workflow_name, before.run_state.label, target.label).inc()
        return after
    assert before is not None
    raise VersionConflict(run_id, before.meta.version, None)
