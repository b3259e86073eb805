"""Property: whatever sequence of controls is applied to a run, only the reference's transitions happen; every
refused control changes nothing; the stored history is exactly the accepted transitions."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor import Builder, RunState
from conveyor.adapters.memory import MemoryRecordStore, MemoryRoleScheduler, MemoryStreamer
from conveyor.errors import InvalidTransition
from tests.engine._orders import Order, Status

CONTROLS = {
    "pause": RunState.PAUSED,
    "resume": RunState.RUNNING,
    "cancel": RunState.CANCELLED,
    "delete_data": RunState.REQUESTED_DATA_DELETED,
}

builder = Builder("state-machine", Order, Status)
builder.add_step(Status.CREATED, lambda run: run.skip(), Status.PAID)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(sorted(CONTROLS)), max_size=12))
def test_controls_follow_the_run_state_machine(controls: list[str]) -> None:
    asyncio.run(_check(controls))


async def _check(controls: list[str]) -> None:
    wf = builder.build(MemoryStreamer(), MemoryRecordStore(), MemoryRoleScheduler())
    await wf.run(roles=())  # API only: no process moves the run behind the test's back
    try:
        run_id = await wf.trigger(str(uuid.uuid4()))
        expected = [RunState.INITIATED]
        for control in controls:
            target = CONTROLS[control]
            call = getattr(wf, control)
            if expected[-1].can_become(target):
                run = await (call(run_id) if control == "resume" else call(run_id, "because"))
                assert run.run_state is target
                expected.append(target)
            else:
                with pytest.raises(InvalidTransition) as refused:
                    await (call(run_id) if control == "resume" else call(run_id, "because"))
                assert refused.value.current == expected[-1].name
        history = await wf.history(run_id)
        assert [h.run_state for h in history] == expected
        assert [h.meta.version for h in history] == list(range(1, len(expected) + 1))
        assert all(h.status is Status.CREATED for h in history)
    finally:
        await wf.stop()
