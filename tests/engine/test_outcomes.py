"""What a function's result does to its run: statuses, the special outcomes, errors, back-off and auto-pause,
and the stale-outcome rule."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from conveyor import Builder, CancelRun, PauseRun, Run, RunState, SaveAndRepeat, Skip, Workflow
from conveyor._engine.runtime import AUTO_PAUSE_REASON
from conveyor.testing import FakeClock, await_status
from tests.conftest import Start
from tests.engine._orders import Order, Status
from tests.helpers import until


def skipped(wf: Workflow[Any, Any], process: str, reason: str) -> float:
    return wf._rt.metrics.skipped_count(process, reason)


def backing_off(clock: FakeClock, seconds: float) -> bool:
    """The step's error back-off has begun (not merely some other process sleeping on the clock)."""
    return clock.sleeping_until(clock.now() + timedelta(seconds=seconds)) > 0


async def test_an_undeclared_status_is_an_error_never_stored(start: Start, clock: FakeClock) -> None:
    calls = 0

    async def wrong(run: Run[Order, Status]) -> Status:
        nonlocal calls
        calls += 1
        return Status.DELIVERED if calls == 1 else Status.PAID

    b = Builder("undeclared", Order, Status)
    b.add_step(Status.CREATED, wrong, Status.PAID).with_options(err_backoff=timedelta(seconds=30))
    wf = await start(b, clock=clock)
    run_id = await wf.trigger("o")
    await until(lambda: calls == 1 and backing_off(clock, 30))
    assert [h.status for h in await wf.history(run_id)] == [Status.CREATED]
    clock.advance(timedelta(seconds=29))
    await asyncio.sleep(0.05)
    assert calls == 1, "retried before the back-off passed"
    clock.advance(timedelta(seconds=1))
    run = await wf.wait_for("o", run_id, Status.PAID, timeout=5)
    assert calls == 2
    assert [h.status for h in await wf.history(run_id)] == [Status.CREATED, Status.PAID]
    assert run.run_state is RunState.COMPLETED


async def test_none_is_an_error(start: Start, clock: FakeClock) -> None:
    calls = 0

    def forgot(run: Run[Order, Status]) -> Status:
        nonlocal calls
        calls += 1
        return None if calls == 1 else Status.PAID  # type: ignore[return-value]

    b = Builder("none", Order, Status)
    b.add_step(Status.CREATED, forgot, Status.PAID).with_options(err_backoff=timedelta(seconds=1))
    wf = await start(b, clock=clock)
    run_id = await wf.trigger("o")
    await until(lambda: calls == 1 and backing_off(clock, 1))
    clock.advance(1)
    await wf.wait_for("o", run_id, Status.PAID, timeout=5)


async def test_pause_after_err_count_then_reset_as_the_reference(start: Start, clock: FakeClock) -> None:
    attempts = 0
    fail = True

    async def flaky(run: Run[Order, Status]) -> Status:
        nonlocal attempts
        attempts += 1
        if fail:
            raise RuntimeError("gateway down")
        return Status.PAID

    def attempted_and_backing_off(n: int) -> Callable[[], bool]:
        return lambda: attempts == n and backing_off(clock, 5)

    b = Builder("flaky", Order, Status)
    b.add_step(Status.CREATED, flaky, Status.PAID).with_options(
        pause_after_err_count=3, err_backoff=timedelta(seconds=5)
    )
    wf = await start(b, clock=clock, pause_retry=None)
    run_id = await wf.trigger("o")
    for n in (1, 2):
        await until(attempted_and_backing_off(n))
        clock.advance(5)
    await until(lambda: attempts == 3)
    await await_status(wf, "o", Status.CREATED)
    await until(lambda: wf._rt.errors._counts == {})
    run = await wf.get_run(run_id)
    assert run.run_state is RunState.PAUSED
    assert run.meta.run_state_reason == AUTO_PAUSE_REASON
    # The counter started again: after a resume it takes three more errors to pause.
    await wf.resume(run_id)
    for n in (4, 5):
        await until(attempted_and_backing_off(n))
        assert (await wf.get_run(run_id)).run_state is RunState.RUNNING
        clock.advance(5)
    await until(lambda: attempts == 6)
    await until(lambda: wf._rt.errors._counts == {})
    assert (await wf.get_run(run_id)).run_state is RunState.PAUSED
    fail = False
    await wf.resume(run_id)
    await wf.wait_for("o", run_id, Status.PAID, timeout=5)


async def test_skip_stores_nothing(start: Start) -> None:
    seen = asyncio.Event()

    async def skip(run: Run[Order, Status]) -> Skip:
        seen.set()
        return run.skip()

    b = Builder("skip", Order, Status)
    b.add_step(Status.CREATED, skip, Status.PAID)
    wf = await start(b)
    run_id = await wf.trigger("o")
    await asyncio.wait_for(seen.wait(), 5)
    await until(lambda: skipped(wf, "created-consumer-1-of-1", "next value specified skip") == 1)
    assert len(await wf.history(run_id)) == 1


async def test_zero_status_skips_as_in_the_reference(start: Start) -> None:
    b = Builder("zero", Order, Status)
    b.add_step(Status.CREATED, lambda run: 0, Status.PAID)  # type: ignore[arg-type,return-value]
    wf = await start(b)
    run_id = await wf.trigger("o")
    await until(lambda: skipped(wf, "created-consumer-1-of-1", "next value specified skip") == 1)
    assert len(await wf.history(run_id)) == 1


async def test_pause_and_cancel_from_a_step_drop_object_changes(start: Start) -> None:
    async def check(run: Run[Order, Status]) -> PauseRun | CancelRun:
        run.object.notes.append("changed")
        return run.pause("fraud check") if run.object.amount > 100 else run.cancel("too small")

    b = Builder("markers", Order, Status)
    b.add_step(Status.CREATED, check, Status.PAID)
    wf = await start(b, pause_retry=None)
    big = await wf.trigger("big", initial_value=Order(amount=500))
    small = await wf.trigger("small", initial_value=Order(amount=5))
    await eventually_state(wf, big, RunState.PAUSED)
    await eventually_state(wf, small, RunState.CANCELLED)
    paused = await wf.get_run(big)
    assert paused.meta.run_state_reason == "fraud check"
    assert paused.object.notes == []
    assert paused.status is Status.CREATED
    assert (await wf.get_run(small)).meta.run_state_reason == "too small"


async def eventually_state(wf: Workflow[Order, Status], run_id: str, state: RunState) -> None:
    async with asyncio.timeout(5):
        while (await wf.get_run(run_id)).run_state is not state:
            await asyncio.sleep(0.002)


async def test_save_and_repeat(start: Start) -> None:
    async def count(run: Run[Order, Status]) -> Status | SaveAndRepeat:
        run.object.amount += 1
        return run.save_and_repeat() if run.object.amount < 3 else Status.PAID

    b = Builder("repeat", Order, Status)
    b.add_step(Status.CREATED, count, Status.PAID)
    wf = await start(b)
    run_id = await wf.trigger("o")
    run = await wf.wait_for("o", run_id, Status.PAID, timeout=5)
    assert run.object.amount == 3
    history = await wf.history(run_id)
    assert [(h.status, h.object.amount) for h in history] == [
        (Status.CREATED, 0),
        (Status.CREATED, 1),
        (Status.CREATED, 2),
        (Status.PAID, 3),
    ]


async def test_a_late_outcome_never_resurrects_a_paused_run(start: Start) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(run: Run[Order, Status]) -> Status:
        entered.set()
        await release.wait()
        run.object.paid = True
        return Status.PAID

    b = Builder("late", Order, Status)
    b.add_step(Status.CREATED, slow, Status.PAID)
    wf = await start(b, pause_retry=None)
    run_id = await wf.trigger("o")
    await asyncio.wait_for(entered.wait(), 5)
    await wf.pause(run_id, "operator says stop")
    release.set()
    await until(lambda: skipped(wf, "created-consumer-1-of-1", "outcome discarded: run changed meanwhile") == 1)
    run = await wf.get_run(run_id)
    assert run.run_state is RunState.PAUSED
    assert run.status is Status.CREATED and not run.object.paid
    assert [h.run_state for h in await wf.history(run_id)] == [RunState.INITIATED, RunState.PAUSED]


async def test_a_cancelled_run_is_not_processed(start: Start) -> None:
    calls = 0
    gate, entered = asyncio.Event(), asyncio.Event()

    async def pay(run: Run[Order, Status]) -> Status:
        nonlocal calls
        calls += 1
        return Status.PAID

    async def hold(run: Run[Order, Status]) -> Status:
        entered.set()
        await gate.wait()
        return Status.PAYMENT_FAILED

    b = Builder("stopped", Order, Status)
    b.add_step(Status.CREATED, hold, Status.PAYMENT_FAILED)
    b.add_step(Status.PAYMENT_FAILED, pay, Status.PAID)
    wf = await start(b, pause_retry=None)
    run_id = await wf.trigger("o")
    await asyncio.wait_for(entered.wait(), 5)
    # Pause while the first step waits, then cancel: the late result is discarded and nothing runs after it.
    await wf.pause(run_id)
    await wf.cancel(run_id, "customer left")
    gate.set()
    await until(lambda: skipped(wf, "created-consumer-1-of-1", "outcome discarded: run changed meanwhile") >= 1)
    assert calls == 0
    assert (await wf.get_run(run_id)).run_state is RunState.CANCELLED
