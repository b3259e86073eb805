"""conveyor.testing: the helpers users test their workflows with, and FakeClock."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from conveyor import Builder, Run, RunState
from conveyor.testing import FakeClock, await_status, new_testing_run, require
from tests.conftest import Start
from tests.engine._orders import Order, Status


async def pay(run: Run[Order, Status]) -> Status:
    if run.object.amount > 100:
        return Status.PAYMENT_FAILED
    run.object.paid = True
    return Status.PAID


async def test_new_testing_run_unit_tests_a_step() -> None:
    run = new_testing_run(Order(amount=5), Status.CREATED)
    assert await pay(run) is Status.PAID
    assert run.object.paid
    assert run.run_state is RunState.RUNNING
    assert await pay(new_testing_run(Order(amount=500), Status.CREATED)) is Status.PAYMENT_FAILED
    marker = run.pause("why")
    assert marker.reason == "why"


async def test_await_status_finds_a_status_already_passed(start: Start) -> None:
    b = Builder("helpers", Order, Status)
    b.add_step(Status.CREATED, pay, Status.PAID, Status.PAYMENT_FAILED)
    b.add_step(Status.PAID, lambda r: Status.FULFILLED, Status.FULFILLED)
    wf = await start(b)
    await wf.trigger("o", initial_value=Order(amount=1))
    await await_status(wf, "o", Status.FULFILLED)
    passed = await await_status(wf, "o", Status.PAID)
    assert passed.status is Status.PAID and passed.object.paid
    await require(wf, "o", Status.PAID, Order(amount=1, paid=True))
    with pytest.raises(AssertionError):
        await require(wf, "o", Status.PAID, Order(amount=2, paid=True))
    with pytest.raises(TimeoutError):
        await await_status(wf, "o", Status.PAYMENT_FAILED, timeout=0.1)


async def test_fake_clock() -> None:
    clock = FakeClock(datetime(2030, 1, 1, tzinfo=UTC))
    woke: list[datetime] = []

    async def sleeper(seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(clock.now())

    async def spin() -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(sleeper(s)) for s in (10, 5, 60)]
    await spin()
    assert clock.sleepers == 3
    start = clock.now()
    assert clock.sleeping_until(start + timedelta(seconds=5)) == 1
    assert clock.sleeping_until(start + timedelta(seconds=6)) == 0
    clock.advance(timedelta(seconds=9))
    await spin()
    assert len(woke) == 1
    clock.advance(1)
    await spin()
    assert len(woke) == 2
    clock.set(datetime(2030, 1, 2, tzinfo=UTC))
    await asyncio.gather(*tasks)
    assert len(woke) == 3
    with pytest.raises(ValueError, match="when"):
        clock.set(datetime(2029, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="delta"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(datetime(2030, 1, 1))
    await clock.sleep(0)


async def test_debug_mode_logs_every_decision_with_ids(start: Start, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="conveyor")
    b = Builder("debugged", Order, Status)
    b.add_step(Status.CREATED, pay, Status.PAID, Status.PAYMENT_FAILED)
    wf = await start(b, debug=True)
    run_id = await wf.trigger("dbg")
    await wf.wait_for("dbg", run_id, Status.PAID, timeout=5)
    await asyncio.sleep(0.02)
    messages = [r.getMessage() for r in caplog.records if r.name == "conveyor"]
    triggered = [m for m in messages if m.startswith("triggered run")]
    stored = [m for m in messages if m.startswith("stored outcome")]
    assert triggered and stored
    for message in triggered + stored:
        assert f"run_id={run_id}" in message and "foreign_id=dbg" in message and "workflow=debugged" in message
    assert "status=2" in stored[0]
    assert any(m.startswith("running step") for m in messages)


async def test_without_debug_there_are_no_decision_logs(start: Start, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="conveyor")
    b = Builder("quiet", Order, Status)
    b.add_step(Status.CREATED, pay, Status.PAID, Status.PAYMENT_FAILED)
    wf = await start(b)
    run_id = await wf.trigger("q")
    await wf.wait_for("q", run_id, Status.PAID, timeout=5)
    assert not [r for r in caplog.records if r.name == "conveyor" and r.levelno == logging.DEBUG]
