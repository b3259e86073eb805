"""Callbacks, timeouts, schedules and connectors: the ways a run moves other than a step."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from conveyor import Builder, Run, RunState, Skip, Workflow, duration_timer, time_timer
from conveyor._engine.spec import TimerFn
from conveyor.adapters.base import ConnectorEvent
from conveyor.adapters.memory import MemoryConnector
from conveyor.errors import InvalidInput, InvalidStatus
from conveyor.testing import FakeClock, await_timeout_insert, trigger_callback_on
from tests.conftest import Memory, Start
from tests.engine._orders import Order, Status


def shipping(name: str) -> Builder[Order, Status]:
    async def delivered(run: Run[Order, Status], payload: bytes) -> Status | Skip:
        if payload == b"not yet":
            return run.skip()
        run.object.notes.append(payload.decode())
        return Status.DELIVERED

    b = Builder(name, Order, Status)
    b.add_step(Status.CREATED, lambda run: Status.SHIPPED, Status.SHIPPED)
    b.add_callback(Status.SHIPPED, delivered, Status.DELIVERED)
    return b


async def test_callback_moves_the_run(start: Start) -> None:
    wf = await start(shipping("callbacks"))
    run_id = await wf.trigger("o")
    assert await trigger_callback_on(wf, "o", Status.SHIPPED, b"signed by J") is True
    run = await wf.wait_for("o", run_id, Status.DELIVERED, timeout=5)
    assert run.object.notes == ["signed by J"]
    assert run.run_state is RunState.COMPLETED
    # Not at that status any more: nothing happens.
    assert await wf.callback("o", Status.SHIPPED, b"again") is False


async def test_callback_skip_and_bad_input(start: Start) -> None:
    wf = await start(shipping("callbacks-bad"))
    run_id = await wf.trigger("o")
    assert await trigger_callback_on(wf, "o", Status.SHIPPED, b"not yet") is False
    with pytest.raises(InvalidStatus, match="a status with a callback"):
        await wf.callback("o", Status.CREATED, b"x")
    with pytest.raises(InvalidInput, match="payload"):
        await wf.callback("o", Status.SHIPPED, "text")  # type: ignore[arg-type]
    assert [h.status for h in await wf.history(run_id)] == [Status.CREATED, Status.SHIPPED]


def expiring(name: str, timer: TimerFn[Order, Status]) -> tuple[Builder[Order, Status], list[datetime]]:
    """The shipping workflow with a timeout to EXPIRED, and the times its function was called at."""
    fired: list[datetime] = []

    async def expire(run: Run[Order, Status], now: datetime) -> Status:
        fired.append(now)
        run.object.notes.append("expired")
        return Status.EXPIRED

    b = shipping(name)
    b.add_timeout(Status.SHIPPED, timer, expire, Status.EXPIRED)
    return b, fired


async def test_a_duration_timeout_fires_once(start: Start, clock: FakeClock, memory: Memory) -> None:
    b, fired = expiring("timeouts", duration_timer(timedelta(hours=1)))
    wf = await start(b, clock=clock)
    run_id = await wf.trigger("o")
    await await_timeout_insert(wf, "o", run_id, Status.SHIPPED)
    clock.advance(timedelta(minutes=59))
    await asyncio.sleep(0.05)
    assert fired == []
    clock.advance(timedelta(minutes=1, seconds=1))
    run = await wf.wait_for("o", run_id, Status.EXPIRED, timeout=5)
    assert run.object.notes == ["expired"]
    for _ in range(3):
        clock.advance(timedelta(hours=1))
        await asyncio.sleep(0.02)
    assert len(fired) == 1
    [timeout] = await memory.timeouts.list(wf.name)
    assert timeout.completed


async def test_a_time_timer(start: Start, clock: FakeClock) -> None:
    b, _ = expiring("time-timer", time_timer(clock.now() + timedelta(days=2)))
    wf = await start(b, clock=clock)
    run_id = await wf.trigger("o")
    await await_timeout_insert(wf, "o", run_id, Status.SHIPPED)
    clock.advance(timedelta(days=2))
    await wf.wait_for("o", run_id, Status.EXPIRED, timeout=5)


async def test_a_timer_returning_none_schedules_nothing(start: Start, clock: FakeClock, memory: Memory) -> None:
    b, _ = expiring("no-timer", lambda run, now: None)
    wf = await start(b, clock=clock)
    run_id = await wf.trigger("o")
    await wf.wait_for("o", run_id, Status.SHIPPED, timeout=5)
    await asyncio.sleep(0.05)
    assert await memory.timeouts.list(wf.name) == []


async def test_a_timeout_is_cancelled_when_the_run_moves_on(start: Start, clock: FakeClock, memory: Memory) -> None:
    b, fired = expiring("moved-on", duration_timer(timedelta(hours=1)))
    wf = await start(b, clock=clock)
    run_id = await wf.trigger("o")
    await await_timeout_insert(wf, "o", run_id, Status.SHIPPED)
    assert await wf.callback("o", Status.SHIPPED, b"on time")
    clock.advance(timedelta(hours=2))
    await eventually_empty(memory, wf.name)
    assert fired == []
    assert (await wf.get_run(run_id)).status is Status.DELIVERED


async def eventually_empty(memory: Memory, name: str) -> None:
    async with asyncio.timeout(5):
        while await memory.timeouts.list(name):
            await asyncio.sleep(0.002)


async def test_schedule_triggers_on_cron(start: Start, clock: FakeClock, memory: Memory) -> None:
    clock.set(datetime.fromisoformat("2024-03-01T10:00:00+00:00"))
    b = Builder("nightly", Order, Status)
    b.add_step(Status.CREATED, lambda run: Status.PAID, Status.PAID)
    wf = await start(b, clock=clock)
    role = await wf.schedule("report", "0 2 * * *", initial_value=Order(id="report"))
    assert role == "nightly-report-scheduler-0_2_*_*_*"
    await asyncio.sleep(0.05)
    assert await memory.store.list(wf.name) == []
    clock.set(datetime.fromisoformat("2024-03-02T02:00:00+00:00"))
    await eventually_runs(memory, wf.name, 1)
    # The next slot only once the first run is done: a slot that comes while a run is in progress is skipped (the
    # next test), and on a busy machine its one step may not have run yet.
    first = (await memory.store.list(wf.name))[0]
    await wf.wait_for("report", first.run_id, Status.PAID, timeout=5)
    clock.set(datetime.fromisoformat("2024-03-03T02:00:00+00:00"))
    await eventually_runs(memory, wf.name, 2)
    runs = await memory.store.list(wf.name)
    assert [r.created_at.isoformat() for r in runs] == [
        "2024-03-02T02:00:00+00:00",
        "2024-03-03T02:00:00+00:00",
    ]


async def eventually_runs(memory: Memory, name: str, count: int) -> None:
    async with asyncio.timeout(5):
        while len(await memory.store.list(name)) < count:
            await asyncio.sleep(0.002)


async def test_schedule_every_skips_slots_with_a_run_in_progress(
    start: Start, clock: FakeClock, memory: Memory
) -> None:
    b = Builder("every", Order, Status)
    b.add_step(Status.CREATED, lambda run: run.skip(), Status.PAID)
    wf = await start(b, clock=clock)
    await wf.schedule("poll", "@every 30m")
    await asyncio.sleep(0.05)  # let the schedule start counting from now
    clock.advance(timedelta(minutes=30))
    await eventually_runs(memory, wf.name, 1)
    clock.advance(timedelta(minutes=30))
    await asyncio.sleep(0.05)
    assert len(await memory.store.list(wf.name)) == 1


@pytest.mark.parametrize("spec", ["", "every day", "61 * * * *", "@every", "@every soon"])
async def test_a_bad_cron_spec_is_refused(start: Start, spec: str) -> None:
    b = Builder("bad-cron", Order, Status)
    b.add_step(Status.CREATED, lambda run: Status.PAID, Status.PAID)
    wf = await start(b)
    with pytest.raises(InvalidInput, match="cron_spec"):
        await wf.schedule("x", spec)


async def test_connectors_feed_the_workflow(start: Start) -> None:
    events = [ConnectorEvent(id=str(i), foreign_id=f"order-{i}") for i in range(10)]
    connector = MemoryConnector(events)

    async def start_run(wf: Workflow[Order, Status], event: ConnectorEvent) -> None:
        await wf.trigger(event.foreign_id, initial_value=Order(id=event.foreign_id))

    b = Builder("connected", Order, Status)
    b.add_step(Status.CREATED, lambda run: Status.PAID, Status.PAID)
    b.add_connector("orders-feed", connector, start_run).with_options(parallel_count=3)
    wf = await start(b)
    assert sum(r.startswith("orders-feed-connector-to-connected-consumer-") for r in wf.roles()) == 3
    async with asyncio.timeout(5):
        while len(await wf.store.list(wf.name, limit=100)) < 10:
            await asyncio.sleep(0.002)
    records = await wf.store.list(wf.name, limit=100)
    assert sorted(r.foreign_id for r in records) == sorted(e.foreign_id for e in events)
