"""The stranded-runs check on the memory adapters: a workflow built with statuses A, B and C parks runs at B; a
second build of the same workflow name without B's step counts them at start (logged once per change, exported
as conveyor_stranded_runs{workflow_name, status}, given by Workflow.stranded_runs()), again every period of the
workflow's clock, and forgets them once they are moved away, the series removed. A status the code no longer
knows is named by its number; one with a callback or a timeout is not stranded; a check that loses its role
forgets what it counted."""

from __future__ import annotations

import enum
import logging
from datetime import datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from conveyor import Builder, Client, ProcessKind, RunState, StrandedRuns, Workflow
from conveyor._engine.options import STRANDED_CHECK_INTERVAL
from conveyor._engine.roles import stranded_check_role
from conveyor._engine.stranded import stranded
from conveyor.cli._worker import choose_roles
from conveyor.testing import FakeClock
from tests.conftest import Memory
from tests.helpers import Parcel, Parked, park_at_b, parked, unique, until

METRIC = "conveyor_stranded_runs"
INTERVAL = STRANDED_CHECK_INTERVAL.total_seconds()


class Renumbered(enum.IntEnum):
    """The next version of Parked with B renumbered: runs stored at 2 are at a number this code has no name for."""

    A = 1
    C = 3
    B = 5


def gauge(name: str, status: str) -> float | None:
    return REGISTRY.get_sample_value(METRIC, {"workflow_name": name, "status": status})


def said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "conveyor" and "stranded runs" in r.getMessage()]


async def park(memory: Memory, name: str, clock: FakeClock) -> list[str]:
    return await park_at_b(memory.streamer, memory.store, memory.roles, name, clock)


async def counted(wf: Workflow[Parcel, Parked], clock: FakeClock) -> dict[str, int]:
    """Move the clock one period on, wait for the check to have counted again (it then sleeps for the next
    period), and give what it found: status label -> count."""
    clock.advance(INTERVAL)
    await until(lambda: clock.sleeping_until(clock.now() + timedelta(seconds=INTERVAL)) == 1)
    found = wf.stranded_runs()
    assert found is not None
    return {s.label: s.count for s in found}


async def test_runs_left_at_a_status_that_lost_its_step_are_counted_logged_and_exported(
    memory: Memory, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    name = unique("stranded")
    run_ids = await park(memory, name, clock)
    caplog.set_level(logging.INFO, logger="conveyor")
    wf = parked(name, b_step=False).build(memory.streamer, memory.store, memory.roles, clock=clock)
    assert wf.stranded_runs() is None  # not counted yet
    await wf.run()
    try:
        await until(lambda: wf.stranded_runs() is not None)
        (found,) = wf.stranded_runs() or ()
        assert isinstance(found, StrandedRuns)
        assert (found.status, found.name, found.label, found.count) == (2, "B", "B", 3)
        assert dict(found.run_states) == {RunState.INITIATED: 1, RunState.RUNNING: 1, RunState.PAUSED: 1}
        assert isinstance(found.oldest, datetime) and found.oldest <= clock.now()
        assert gauge(name, "B") == 3
        (line,) = said(caplog)
        assert "3 active runs at status B (2) which no step, callback or timeout of this code moves" in line
        assert "1 initiated, 1 running, 1 paused" in line and f"workflow={name}" in line

        # Every period it counts again, and says nothing while nothing changed.
        await until(lambda: clock.sleeping_until(clock.now() + timedelta(seconds=INTERVAL)) == 1)
        assert await counted(wf, clock) == {"B": 3}
        assert len(said(caplog)) == 1

        # Paused runs are stranded too (resumed, they would still not move); runs moved away (here cancelled,
        # as a fork does to a paused run) leave the count, then the series goes and "none left" is said once.
        client = Client(memory.store, wf)
        await client.pause(run_ids[0], "to move")
        await client.pause(run_ids[2], "to move")
        assert await counted(wf, clock) == {"B": 3}
        assert "3 active runs at status B (2)" in said(caplog)[-1] and "3 paused" in said(caplog)[-1]
        await client.cancel(run_ids[0], "moved by hand")
        assert await counted(wf, clock) == {"B": 2}
        assert gauge(name, "B") == 2
        assert "2 active runs at status B (2)" in said(caplog)[-1]
        for run_id in run_ids[1:]:
            await client.cancel(run_id, "moved by hand")
        assert await counted(wf, clock) == {}
        assert gauge(name, "B") is None
        assert said(caplog)[-1] == f"stranded runs: none left at status B (2) [workflow={name}]"
        lines = len(said(caplog))
        assert await counted(wf, clock) == {}
        assert len(said(caplog)) == lines
    finally:
        await wf.stop()
    # Stopped: nothing counted here any more.
    assert wf.stranded_runs() is None


async def test_a_status_number_the_code_no_longer_knows_is_labelled_by_its_number(
    memory: Memory, clock: FakeClock
) -> None:
    name = unique("renumbered")
    await park(memory, name, clock)
    b = Builder(name, Parcel, Renumbered)
    b.add_step(Renumbered.A, lambda run: Renumbered.B, Renumbered.B)
    b.add_step(Renumbered.B, lambda run: Renumbered.C, Renumbered.C)
    wf = b.build(memory.streamer, memory.store, memory.roles, clock=clock)
    await wf.run(roles=[stranded_check_role(name)])
    try:
        await until(lambda: wf.stranded_runs() is not None)
        (found,) = wf.stranded_runs() or ()
        assert (found.status, found.name, found.label, found.count) == (2, None, "2", 3)
        assert gauge(name, "2") == 3 and gauge(name, "B") is None
    finally:
        await wf.stop()
    assert gauge(name, "2") is None


async def test_the_same_code_strands_nothing_and_a_callback_or_timeout_moves_runs_too(
    memory: Memory, clock: FakeClock
) -> None:
    name = unique("moved")
    await park(memory, name, clock)
    same = parked(name).build(memory.streamer, memory.store, memory.roles, clock=clock)
    await same.run(roles=[stranded_check_role(name)])
    try:
        await until(lambda: same.stranded_runs() is not None)
        assert same.stranded_runs() == ()
        assert gauge(name, "B") is None
    finally:
        await same.stop()
    for how in ("callback", "timeout"):
        b = parked(name, b_step=False)
        if how == "callback":
            b.add_callback(Parked.B, lambda run, payload: Parked.C, Parked.C)
        else:
            b.add_timeout(Parked.B, lambda run, now: None, lambda run, now: Parked.C, Parked.C)
        assert stranded(b.spec(), await memory.store.count_active(name)) == (), how


async def test_a_check_that_loses_its_role_forgets_its_counts_until_it_holds_it_again(
    memory: Memory, clock: FakeClock
) -> None:
    name = unique("lost")
    await park(memory, name, clock)
    wf = parked(name, b_step=False).build(memory.streamer, memory.store, memory.roles, clock=clock)
    role = stranded_check_role(name)
    await wf.run(roles=[role])
    try:
        await until(lambda: gauge(name, "B") == 3)
        # Another holder takes the role (as another pod would once this one's Lease expired).
        assert memory.roles.revoke(role)
        async with memory.roles.hold(role):
            await until(lambda: wf.stranded_runs() is None)
            assert gauge(name, "B") is None
            assert wf.states()["stranded-runs-check"] == "Idle"
        # Given back, the role is this workflow's again, and its check counts at once.
        await until(lambda: gauge(name, "B") == 3)
        assert [s.count for s in wf.stranded_runs() or ()] == [3]
    finally:
        await wf.stop()


def test_the_check_is_a_system_process_of_the_table(memory: Memory) -> None:
    name = unique("table")
    wf = parked(name, b_step=False).build(memory.streamer, memory.store, memory.roles)
    (check,) = [p for p in wf.processes() if p.kind == ProcessKind.STRANDED_CHECK]
    assert (check.role, check.name) == (f"{name}-stranded-runs-check", "stranded-runs-check")
    assert check.role in choose_roles(wf, None, None, True)
    assert check.role not in choose_roles(wf, "A", 1, False)
