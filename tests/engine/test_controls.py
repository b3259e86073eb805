"""Run controls (pause, resume, cancel, delete data), the data-deletion flow, hooks and the paused-run retry."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from conveyor import Builder, PauseRun, Run, RunState, Workflow
from conveyor.errors import InvalidInput, InvalidTransition, RecordNotFound
from conveyor.testing import FakeClock
from tests.conftest import Start
from tests.engine._orders import Order, Status
from tests.helpers import until


async def state_of(wf: Workflow[Order, Status], run_id: str, state: RunState) -> Run[Order, Status]:
    async with asyncio.timeout(5):
        while (run := await wf.get_run(run_id)).run_state is not state:
            await asyncio.sleep(0.002)
    return run


def held_builder(name: str, gate: asyncio.Event) -> Builder[Order, Status]:
    async def wait(run: Run[Order, Status]) -> Status:
        await gate.wait()
        run.object.paid = True
        return Status.PAID

    b = Builder(name, Order, Status)
    b.add_step(Status.CREATED, lambda run: run.skip(), Status.PAID)
    b.add_step(Status.PAID, wait, Status.FULFILLED)
    return b


async def test_pause_resume_cancel(start: Start) -> None:
    b = Builder("controls", Order, Status)
    b.add_step(Status.CREATED, lambda run: run.skip(), Status.PAID)
    wf = await start(b, pause_retry=None)
    run_id = await wf.trigger("o")
    paused = await wf.pause(run_id, "looking into it")
    assert paused.run_state is RunState.PAUSED and paused.meta.run_state_reason == "looking into it"
    resumed = await wf.resume(run_id)
    assert resumed.run_state is RunState.RUNNING
    cancelled = await wf.cancel(run_id, "no longer wanted")
    assert cancelled.run_state is RunState.CANCELLED
    assert [h.run_state for h in await wf.history(run_id)] == [
        RunState.INITIATED,
        RunState.PAUSED,
        RunState.RUNNING,
        RunState.CANCELLED,
    ]


async def test_a_control_the_state_forbids_changes_nothing(start: Start) -> None:
    b = Builder("forbidden", Order, Status)
    b.add_step(Status.CREATED, lambda run: Status.PAID, Status.PAID)
    wf = await start(b)
    run_id = await wf.trigger("o")
    await wf.wait_for("o", run_id, Status.PAID, timeout=5)
    before = await wf.history(run_id)
    for control in (wf.pause, wf.resume, wf.cancel):
        with pytest.raises(InvalidTransition) as info:
            await control(run_id)
        assert info.value.current == "COMPLETED"
    assert len(await wf.history(run_id)) == len(before)
    with pytest.raises(InvalidInput, match="reason"):
        await wf.pause(run_id, 5)  # type: ignore[arg-type]
    with pytest.raises(RecordNotFound):
        await wf.cancel("nope")


async def test_delete_data_scrubs_the_object(start: Start) -> None:
    b = Builder("gdpr", Order, Status)
    b.add_step(Status.CREATED, lambda run: Status.PAID, Status.PAID)
    wf = await start(b)
    run_id = await wf.trigger("o", initial_value=Order(id="secret", amount=3))
    await wf.wait_for("o", run_id, Status.PAID, timeout=5)
    requested = await wf.delete_data(run_id, "right to be forgotten")
    assert requested.run_state is RunState.REQUESTED_DATA_DELETED
    deleted = await state_of(wf, run_id, RunState.DATA_DELETED)
    assert deleted.object is None
    assert (await wf.store.lookup(run_id)).object is None
    # Deleting again is allowed (DATA_DELETED -> REQUESTED_DATA_DELETED -> DATA_DELETED).
    await wf.delete_data(run_id)
    await until(lambda: True)
    await state_of(wf, run_id, RunState.DATA_DELETED)


async def test_custom_delete_gives_a_replacement(start: Start) -> None:
    b = Builder("gdpr-custom", Order, Status)
    b.add_step(Status.CREATED, lambda run: Status.PAID, Status.PAID)

    def scrub(run: Run[Order, Status]) -> Order:
        return Order(id=run.object.id, amount=run.object.amount, notes=["scrubbed"])

    wf = await start(b, custom_delete=scrub)
    run_id = await wf.trigger("o", initial_value=Order(id="keep-id", amount=3, notes=["card 4242"]))
    await wf.wait_for("o", run_id, Status.PAID, timeout=5)
    await wf.delete_data(run_id)
    deleted = await state_of(wf, run_id, RunState.DATA_DELETED)
    assert deleted.object == Order(id="keep-id", amount=3, notes=["scrubbed"])


async def test_delete_data_of_a_running_run_is_refused(start: Start) -> None:
    gate = asyncio.Event()
    wf = await start(held_builder("no-delete", gate))
    run_id = await wf.trigger("o")
    with pytest.raises(InvalidTransition):
        await wf.delete_data(run_id)
    gate.set()


async def test_hooks_run_once_per_state_change(start: Start) -> None:
    seen: list[tuple[str, RunState, str]] = []

    def record(kind: str) -> Callable[[Run[Order, Status]], Awaitable[None]]:
        async def hook(run: Run[Order, Status]) -> None:
            seen.append((kind, run.run_state, run.foreign_id))

        return hook

    b = Builder("hooks", Order, Status)

    async def maybe_pause(run: Run[Order, Status]) -> Status | PauseRun:
        return run.pause("check") if run.foreign_id == "p" else Status.PAID

    b.add_step(Status.CREATED, maybe_pause, Status.PAID)
    b.on_complete(record("complete"))
    b.on_pause(record("pause"))
    b.on_cancel(record("cancel"))
    wf = await start(b, pause_retry=None)
    done = await wf.trigger("c")
    paused = await wf.trigger("p")
    await wf.wait_for("c", done, Status.PAID, timeout=5)
    await state_of(wf, paused, RunState.PAUSED)
    await wf.cancel(paused, "bye")
    await until(lambda: len(seen) == 3)
    await asyncio.sleep(0.05)
    assert sorted(seen) == sorted(
        [
            ("complete", RunState.COMPLETED, "c"),
            ("pause", RunState.CANCELLED, "p"),
            ("cancel", RunState.CANCELLED, "p"),
        ]
    ) or sorted(seen) == sorted(
        [
            ("complete", RunState.COMPLETED, "c"),
            ("pause", RunState.PAUSED, "p"),
            ("cancel", RunState.CANCELLED, "p"),
        ]
    )


async def test_paused_runs_are_retried_after_pause_retry(start: Start, clock: FakeClock) -> None:
    attempts = 0

    async def flaky(run: Run[Order, Status]) -> Status | PauseRun:
        nonlocal attempts
        attempts += 1
        return run.pause("try later") if attempts == 1 else Status.PAID

    b = Builder("retry-paused", Order, Status)
    b.add_step(Status.CREATED, flaky, Status.PAID)
    wf = await start(b, clock=clock, pause_retry=timedelta(hours=1))
    run_id = await wf.trigger("o")
    await state_of(wf, run_id, RunState.PAUSED)
    clock.advance(timedelta(minutes=59))
    await asyncio.sleep(0.05)
    assert (await wf.get_run(run_id)).run_state is RunState.PAUSED
    clock.advance(timedelta(minutes=1))
    run = await wf.wait_for("o", run_id, Status.PAID, timeout=5)
    assert run.run_state is RunState.COMPLETED and attempts == 2
