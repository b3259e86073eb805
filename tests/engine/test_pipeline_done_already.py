"""Events the pipeline is told are done already (a handoff did their work) get no handling, yet are acknowledged
in receive order: never before an unfinished event received earlier, and never ahead of their foreign id's."""

from __future__ import annotations

import asyncio

from conveyor._core.records import Event
from conveyor._engine.pipeline import Pipeline
from tests.helpers import Receiver, no_drain, until


async def test_done_events_are_acknowledged_in_order_without_handling() -> None:
    receiver = Receiver(["a", "b", "c", "d", "e"])
    release = asyncio.Event()
    handled: list[str] = []

    async def work(event: Event) -> None:
        handled.append(event.foreign_id)
        if event.foreign_id == "a":
            await release.wait()  # the first event is slow

    done = {"b", "d"}
    pipeline = Pipeline(receiver, work, 8, no_drain, lambda e: e.foreign_id in done)
    task = asyncio.ensure_future(pipeline.run())
    try:
        await until(lambda: sorted(handled) == ["a", "c", "e"])
        await asyncio.sleep(0.01)
        assert receiver.acked == []  # b and d are done, but a (received before them) is not
        release.set()
        await until(lambda: receiver.acked == [1, 2, 3, 4, 5])
        assert sorted(handled) == ["a", "c", "e"]  # b and d were never handled
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pipeline.close()


async def test_a_done_event_behind_its_foreign_ids_unfinished_event_is_handled_in_turn() -> None:
    receiver = Receiver(["a", "a", "b"])
    release = asyncio.Event()
    handled: list[int] = []

    async def work(event: Event) -> None:
        handled.append(event.id)
        if event.id == 1:
            await release.wait()

    # Event 2 says it is done, but event 1 of the same foreign id is still being handled: it waits its turn.
    pipeline = Pipeline(receiver, work, 8, no_drain, lambda e: e.id in (2, 3))
    task = asyncio.ensure_future(pipeline.run())
    try:
        await until(lambda: receiver.position == 3)
        await asyncio.sleep(0.01)
        assert handled == [1] and receiver.acked == []
        release.set()
        await until(lambda: receiver.acked == [1, 2, 3])
        assert handled == [1, 2]  # 3 (alone for b) was skipped; 2 went through its handler after 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pipeline.close()


async def test_done_events_hold_their_window_slot_until_acknowledged() -> None:
    receiver = Receiver(["a", "b", "c", "d"])
    release = asyncio.Event()

    async def work(event: Event) -> None:
        await release.wait()

    pipeline = Pipeline(receiver, work, 2, no_drain, lambda e: e.foreign_id != "a")
    task = asyncio.ensure_future(pipeline.run())
    try:
        await until(lambda: receiver.position == 2)
        await asyncio.sleep(0.01)
        assert receiver.position == 2  # a unfinished and b unacknowledged fill the window of 2
        release.set()
        await until(lambda: receiver.acked == [1, 2, 3, 4])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pipeline.close()
