"""The consumers' pipeline: events of different foreign ids are handled at once, each foreign id in order, and
acknowledgements never pass an event that is not finished (a failing one holds back everything after it)."""

from __future__ import annotations

import asyncio

import pytest

from conveyor import Builder, Run
from conveyor._core.records import Event
from conveyor._engine.pipeline import Pipeline
from tests.conftest import Start
from tests.engine._orders import Order, Status
from tests.helpers import Receiver, no_drain, until


async def test_foreign_ids_keep_their_order_while_others_overlap() -> None:
    receiver = Receiver(["a", "b", "a", "c", "a", "b"])
    order: list[tuple[str, int]] = []
    running = 0
    overlapped = 0

    async def work(event: Event) -> None:
        nonlocal running, overlapped
        running += 1
        overlapped = max(overlapped, running)
        # Later events finish first: only the pipeline's chaining keeps a foreign id in order.
        await asyncio.sleep(0.01 * (7 - event.id))
        order.append((event.foreign_id, event.id))
        running -= 1

    pipeline = Pipeline(receiver, work, 64, no_drain)
    task = asyncio.ensure_future(pipeline.run())
    try:
        await until(lambda: len(receiver.acked) == 6)
    finally:
        task.cancel()
        await pipeline.close()
    assert [i for f, i in order if f == "a"] == [1, 3, 5]
    assert [i for f, i in order if f == "b"] == [2, 6]
    assert overlapped > 1
    assert receiver.acked == [1, 2, 3, 4, 5, 6]  # in receive order, whatever the finishing order


async def test_a_failing_event_holds_back_acks_and_its_foreign_id_until_it_succeeds() -> None:
    receiver = Receiver(["x", "y", "x", "z"])
    fail = True
    done: list[int] = []

    async def work(event: Event) -> None:
        if event.id == 2:
            while fail:  # stands for retrying with back-off: the event is not finished
                await asyncio.sleep(0.001)
        done.append(event.id)

    pipeline = Pipeline(receiver, work, 64, no_drain)
    task = asyncio.ensure_future(pipeline.run())
    try:
        await until(lambda: done == [1, 3, 4])
        await asyncio.sleep(0.02)
        assert receiver.acked == [1]  # 3 and 4 are done, but 2 is not: nothing past it
        fail = False
        await until(lambda: receiver.acked == [1, 2, 3, 4])
    finally:
        task.cancel()
        await pipeline.close()


async def test_the_window_bounds_unacknowledged_events() -> None:
    receiver = Receiver([f"f{i}" for i in range(10)])
    release = asyncio.Event()
    started: list[int] = []

    async def work(event: Event) -> None:
        started.append(event.id)
        if event.id == 1:
            await release.wait()

    pipeline = Pipeline(receiver, work, 3, no_drain)
    task = asyncio.ensure_future(pipeline.run())
    try:
        await until(lambda: len(started) == 3)
        await asyncio.sleep(0.02)
        assert receiver.position == 3 and receiver.acked == []
        release.set()
        await until(lambda: len(receiver.acked) == 10)
    finally:
        task.cancel()
        await pipeline.close()


async def test_an_error_escaping_an_event_ends_the_pipeline_without_acking_it() -> None:
    receiver = Receiver(["a", "b"])

    async def work(event: Event) -> None:
        if event.id == 2:
            raise RuntimeError("ack failed")

    pipeline = Pipeline(receiver, work, 64, no_drain)
    try:
        with pytest.raises(RuntimeError, match="ack failed"):
            await asyncio.wait_for(pipeline.run(), 5)
    finally:
        await pipeline.close()
    assert receiver.acked == [1]


@pytest.mark.parametrize(("max_in_flight", "overlaps"), [(1, False), (None, True)])
async def test_a_step_s_max_in_flight_bounds_its_concurrency(
    start: Start, max_in_flight: int | None, overlaps: bool
) -> None:
    running = 0
    most = 0

    async def pay(run: Run[Order, Status]) -> Status:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        return Status.PAID

    b = Builder("in-flight", Order, Status)
    b.add_step(Status.CREATED, pay, Status.PAID).with_options(max_in_flight=max_in_flight)
    wf = await start(b)
    run_ids = [await wf.trigger(f"order-{i}") for i in range(8)]
    for i, run_id in enumerate(run_ids):
        await wf.wait_for(f"order-{i}", run_id, Status.PAID, timeout=5)
    # 1 is the reference's way: one event at a time per shard. The default overlaps different foreign ids.
    assert (most > 1) is overlaps, most
