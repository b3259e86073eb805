"""Duplicate and stale events of a step are acknowledged and never run the step again, on both of a step
consumer's paths: by its events alone (a receiver that cannot say which foreign ids it owns, or a step with a
consume lag), where each one is looked up and counted skipped by the reference's reason, and with the in-process
handoff (receivers that are `ShardOwningReceiver`s: memory's, Kafka's), where the consumer remembers the
versions it handled and acknowledges their events again without a lookup."""

from __future__ import annotations

import dataclasses

import pytest

from conveyor import Builder, Run, RunState, Workflow
from conveyor.adapters.base import (
    Event,
    EventReceiver,
    EventSender,
    EventStreamer,
    OutgoingEvent,
    Record,
    Shard,
    ShardOwningReceiver,
    event_headers,
    topic,
)
from conveyor.adapters.memory import MemoryRecordStore, MemoryRoleScheduler, MemoryStreamer, MemoryTimeoutStore
from tests.engine._orders import Order, Status
from tests.helpers import until

_WHOLE = Shard()


class _PlainReceiver:
    def __init__(self, inner: EventReceiver) -> None:
        self._inner = inner

    async def recv(self) -> Event:
        return await self._inner.recv()

    async def ack(self, event: Event) -> None:
        await self._inner.ack(event)

    async def close(self) -> None:
        await self._inner.close()


class ByEventOnly:
    """The memory streamer with receivers that do not say what they own: its step consumers take no handoff."""

    def __init__(self, inner: MemoryStreamer) -> None:
        self._inner = inner

    async def open(self) -> None:
        await self._inner.open()

    async def close(self) -> None:
        await self._inner.close()

    async def sender(self, topic: str) -> EventSender:
        return await self._inner.sender(topic)

    async def receiver(
        self,
        topic: str,
        name: str,
        *,
        shard: Shard = _WHOLE,
        poll_frequency: float = 0.5,
        from_latest: bool = False,
    ) -> EventReceiver:
        inner = await self._inner.receiver(
            topic, name, shard=shard, poll_frequency=poll_frequency, from_latest=from_latest
        )
        return _PlainReceiver(inner)


class CountingStore(MemoryRecordStore):
    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    async def lookup(self, run_id: str) -> Record:
        self.lookups += 1
        return await super().lookup(run_id)


class Env:
    def __init__(self) -> None:
        self.memory = MemoryStreamer()
        self.store = CountingStore()
        self.calls = 0

    async def pay(self, run: Run[Order, Status]) -> Status:
        self.calls += 1
        return Status.PAID

    def build(self, name: str, streamer: EventStreamer) -> Workflow[Order, Status]:
        b = Builder(name, Order, Status)
        b.add_step(Status.CREATED, self.pay, Status.PAID)
        return b.build(streamer, self.store, MemoryRoleScheduler(), timeout_store=MemoryTimeoutStore())

    async def paid_run(self, wf: Workflow[Order, Status]) -> str:
        run_id = await wf.trigger("o")
        await wf.wait_for("o", run_id, Status.PAID, timeout=5)
        return run_id

    async def first_event(self, wf: Workflow[Order, Status], run_id: str) -> OutgoingEvent:
        """The event of the run's first version, to send again (at-least-once delivery): stale once the run moved
        on."""
        first = (await wf.history(run_id))[0]
        record = (await self.store.lookup(run_id)).copy()
        record.status, record.run_state = int(Status.CREATED), RunState.INITIATED
        record.meta = dataclasses.replace(record.meta, version=first.meta.version)
        return OutgoingEvent(foreign_id="o", type=int(Status.CREATED), headers=event_headers(record))

    async def send(self, wf: Workflow[Order, Status], events: list[OutgoingEvent]) -> None:
        sender = await self.memory.sender(topic(wf.name, int(Status.CREATED)))
        await sender.send(events)

    def acknowledged(self, wf: Workflow[Order, Status]) -> int:
        """The position the step consumer acknowledged (memory event ids are positions in the topic)."""
        key = (topic(wf.name, int(Status.CREATED)), f"{wf.name}-1-consumer-1-of-1")
        return self.memory._cursors.get(key, 0)


@pytest.fixture
def env() -> Env:
    return Env()


def skipped_stale(wf: Workflow[Order, Status]) -> float:
    return wf._rt.metrics.skipped_count(
        "created-consumer-1-of-1", "event record version lower than latest record version"
    )


async def test_duplicate_and_stale_events_are_acknowledged_and_skipped(env: Env) -> None:
    streamer = ByEventOnly(env.memory)
    assert not isinstance(await streamer.receiver("any", "any"), ShardOwningReceiver)
    wf = env.build("dupes", streamer)
    await wf.run()
    try:
        run_id = await env.paid_run(wf)
        event = await env.first_event(wf, run_id)
        await env.send(wf, [event, event])
        await until(lambda: skipped_stale(wf) == 2)
        assert env.calls == 1
        assert len(await wf.history(run_id)) == 2
    finally:
        await wf.stop(grace=1)


async def test_with_the_handoff_duplicates_of_a_version_handled_here_need_no_lookup(env: Env) -> None:
    wf = env.build("dupes-handoff", env.memory)
    await wf.run()
    try:
        run_id = await env.paid_run(wf)
        await until(lambda: env.acknowledged(wf) == 1)  # the run's own event (handed off, or handled first)
        event = await env.first_event(wf, run_id)
        lookups = env.store.lookups
        await env.send(wf, [event, event])
        await until(lambda: env.acknowledged(wf) == 3)
        assert env.store.lookups == lookups
        assert env.calls == 1
        assert len(await wf.history(run_id)) == 2
    finally:
        await wf.stop(grace=1)
