"""Sharding and roles: each event is handled by exactly one shard, each role by exactly one holder, and a
process that loses its role stops acting on it at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from conveyor import Builder, Run, RunState
from conveyor._core.sharding import shard_of
from conveyor.adapters.base import Event, EventReceiver, Shard
from conveyor.adapters.memory import (
    MemoryRecordStore,
    MemoryRoleScheduler,
    MemoryStreamer,
    MemoryTimeoutStore,
)
from tests.engine._orders import Order, Status


class RecordingStreamer(MemoryStreamer):
    """A memory streamer that notes which receiver got which event."""

    def __init__(self) -> None:
        super().__init__()
        self.deliveries: list[tuple[str, Shard, str]] = []

    async def receiver(self, topic: str, name: str, **kwargs: Any) -> EventReceiver:
        inner = await super().receiver(topic, name, **kwargs)
        deliveries, shard = self.deliveries, kwargs.get("shard", Shard())

        class Recording:
            async def recv(self) -> Event:
                event = await inner.recv()
                deliveries.append((name, shard, event.foreign_id))
                return event

            async def ack(self, event: Event) -> None:
                await inner.ack(event)

            async def close(self) -> None:
                await inner.close()

        return Recording()


async def test_each_run_is_handled_by_exactly_one_shard() -> None:
    calls: Counter[str] = Counter()

    async def pay(run: Run[Order, Status]) -> Status:
        calls[run.foreign_id] += 1
        return Status.PAID

    b = Builder("sharded", Order, Status)
    b.add_step(Status.CREATED, pay, Status.PAID).with_options(parallel_count=4)
    streamer = RecordingStreamer()
    wf = b.build(streamer, MemoryRecordStore(), MemoryRoleScheduler())
    async with wf:
        ids = {f"order-{i}": await wf.trigger(f"order-{i}") for i in range(120)}
        await asyncio.gather(*(wf.wait_for(f, r, Status.PAID, timeout=10) for f, r in ids.items()))
    assert set(calls) == set(ids) and set(calls.values()) == {1}
    step_deliveries = [(n, s, f) for n, s, f in streamer.deliveries if n.startswith("sharded-1-consumer-")]
    assert len(step_deliveries) == 120
    for name, shard, foreign_id in step_deliveries:
        assert shard.count == 4
        assert shard_of(foreign_id, 4) == shard.index
        assert name == f"sharded-1-consumer-{shard.index}-of-4"
    assert len({s.index for _, s, _ in step_deliveries}) == 4


async def test_two_processes_share_the_roles_and_the_second_takes_over() -> None:
    """Two workflow instances on shared adapters stand for two worker processes."""
    streamer, store, roles, timeouts = (
        MemoryStreamer(),
        MemoryRecordStore(),
        MemoryRoleScheduler(),
        MemoryTimeoutStore(),
    )
    handled: list[tuple[str, str]] = []

    def make(worker: str) -> Any:
        async def pay(run: Run[Order, Status]) -> Status:
            handled.append((worker, run.foreign_id))
            return Status.PAID

        b = Builder("shared", Order, Status)
        b.add_step(Status.CREATED, pay, Status.PAID).with_options(parallel_count=2)
        return b.build(streamer, store, roles, timeout_store=timeouts)

    first, second = make("first"), make("second")
    await first.run()
    await asyncio.sleep(0.02)
    await second.run()
    try:
        run_ids = {f"a{i}": await first.trigger(f"a{i}") for i in range(20)}
        await asyncio.gather(*(first.wait_for(f, r, Status.PAID, timeout=10) for f, r in run_ids.items()))
        assert {w for w, _ in handled} == {"first"}, "the second process acted without holding the roles"
        await first.stop()
        more = {f"b{i}": await second.trigger(f"b{i}") for i in range(20)}
        await asyncio.gather(*(second.wait_for(f, r, Status.PAID, timeout=10) for f, r in more.items()))
        assert {f for w, f in handled if w == "second"} == set(more)
        assert Counter(f for _, f in handled) == Counter({**dict.fromkeys(run_ids, 1), **dict.fromkeys(more, 1)})
    finally:
        await first.stop()
        await second.stop()


async def test_a_lost_role_stops_the_process_at_once() -> None:
    entered = asyncio.Event()
    attempts = 0

    async def slow(run: Run[Order, Status]) -> Status:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            entered.set()
            await asyncio.Event().wait()  # never finishes: the lost role must cancel it
        return Status.PAID

    roles = MemoryRoleScheduler()
    b = Builder("revoked", Order, Status)
    b.add_step(Status.CREATED, slow, Status.PAID)
    wf = b.build(MemoryStreamer(), MemoryRecordStore(), roles)
    async with wf:
        run_id = await wf.trigger("o")
        await asyncio.wait_for(entered.wait(), 5)
        roles.revoke("revoked-1-consumer-1-of-1")
        # The process gave the role up, acquired it again, and the unacknowledged event was delivered again.
        run = await wf.wait_for("o", run_id, Status.PAID, timeout=5)
        assert run.run_state is RunState.COMPLETED
        assert attempts == 2


async def test_stop_lets_the_current_event_finish() -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(run: Run[Order, Status]) -> Status:
        entered.set()
        await release.wait()
        return Status.PAID

    store = MemoryRecordStore()
    b = Builder("graceful", Order, Status)
    b.add_step(Status.CREATED, slow, Status.PAID)
    wf = b.build(MemoryStreamer(), store, MemoryRoleScheduler())
    await wf.run()
    run_id = await wf.trigger("o")
    await asyncio.wait_for(entered.wait(), 5)
    stopping = asyncio.create_task(wf.stop(grace=5))
    await asyncio.sleep(0.05)
    assert not stopping.done()
    release.set()
    await asyncio.wait_for(stopping, 5)
    assert (await store.lookup(run_id)).status == Status.PAID


async def test_outbox_survives_a_stop_before_publishing() -> None:
    """A record and its event are written together: events not yet published when a process stops are published
    by the next one."""
    streamer, store, roles = MemoryStreamer(), MemoryRecordStore(), MemoryRoleScheduler()
    b = Builder("outbox", Order, Status)
    b.add_step(Status.CREATED, lambda run: Status.PAID, Status.PAID)
    # A process that only triggers (no outbox relay, no consumers), as an API server would.
    api = b.build(streamer, store, roles)
    await api.run(roles=())
    run_id = await api.trigger("o")
    assert len(await store.list_outbox_events("outbox", 10)) == 1
    await api.stop()
    worker = b.build(streamer, store, roles)
    async with worker:
        await worker.wait_for("o", run_id, Status.PAID, timeout=5)
    assert await store.list_outbox_events("outbox", 10) == []
