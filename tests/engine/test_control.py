"""control_run: changing a run's state through its record store alone (what the UI and CLI do)."""

from __future__ import annotations

import pytest

from conveyor import Builder, RunState
from conveyor._engine.control import control_run
from conveyor.adapters.memory import MemoryRecordStore
from conveyor.errors import InvalidInput, InvalidTransition, RecordNotFound
from tests.conftest import Start
from tests.engine._orders import Order, Status


def blocked_builder() -> Builder[Order, Status]:
    b = Builder("store-controls", Order, Status)
    b.add_step(Status.CREATED, lambda run: run.skip(), Status.PAID)
    return b


async def test_pause_resume_cancel_delete_through_the_store(start: Start) -> None:
    wf = await start(blocked_builder(), pause_retry=None)
    store = wf.store
    run_id = await wf.trigger("o-1")

    paused = await control_run(store, run_id, RunState.PAUSED, "looking into it")
    assert paused.run_state is RunState.PAUSED and paused.meta.run_state_reason == "looking into it"
    assert paused.meta.version == 2 and paused.status == Status.CREATED
    resumed = await control_run(store, run_id, RunState.RUNNING)
    assert (await wf.get_run(run_id)).run_state is RunState.RUNNING
    assert resumed.meta.version == 3
    await control_run(store, run_id, RunState.CANCELLED, "no longer wanted")
    await control_run(store, run_id, RunState.REQUESTED_DATA_DELETED)
    assert [h.run_state for h in await wf.history(run_id)][:5] == [
        RunState.INITIATED,
        RunState.PAUSED,
        RunState.RUNNING,
        RunState.CANCELLED,
        RunState.REQUESTED_DATA_DELETED,
    ]


async def test_refused_changes_write_nothing(start: Start) -> None:
    wf = await start(blocked_builder(), pause_retry=None)
    run_id = await wf.trigger("o-2")
    with pytest.raises(InvalidTransition, match="cannot move from INITIATED to CANCELLED"):
        await control_run(wf.store, run_id, RunState.CANCELLED)
    with pytest.raises(InvalidInput, match="target: expected one of PAUSED, RUNNING"):
        await control_run(wf.store, run_id, RunState.COMPLETED)
    with pytest.raises(InvalidInput, match="reason"):
        await control_run(wf.store, run_id, RunState.PAUSED, "x" * 2000)
    assert len(await wf.history(run_id)) == 1


async def test_unknown_run() -> None:
    store = MemoryRecordStore()
    await store.open()
    with pytest.raises(RecordNotFound):
        await control_run(store, "no-such-run", RunState.PAUSED)
