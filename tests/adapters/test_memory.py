"""The in-memory adapters against every conformance suite, plus what only they have (revoke, clocks, copies)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from conveyor.adapters.base import Connector, ConnectorEvent, OutgoingEvent, Record, RoleScheduler
from conveyor.adapters.memory import (
    MemoryConnector,
    MemoryRecordStore,
    MemoryRoleScheduler,
    MemoryStreamer,
    MemoryTimeoutStore,
)
from conveyor.testing import FakeClock
from conveyor.testing.conformance import (
    Adapters,
    ConnectorSuite,
    EventStreamerSuite,
    RecordStoreSuite,
    RoleSchedulerSuite,
    TimeoutStoreSuite,
    WorkflowSuite,
)
from conveyor.testing.conformance._support import new_record


class TestMemoryRecordStore(RecordStoreSuite):
    @pytest.fixture
    def record_store(self) -> MemoryRecordStore:
        return MemoryRecordStore()


class TestMemoryStreamer(EventStreamerSuite):
    @pytest.fixture
    def event_streamer(self) -> MemoryStreamer:
        return MemoryStreamer()


class TestMemoryRoleScheduler(RoleSchedulerSuite):
    @pytest.fixture
    def role_schedulers(self) -> object:
        shared = MemoryRoleScheduler()

        def make(n: int) -> list[RoleScheduler]:
            return [shared] * n

        return make


class TestMemoryTimeoutStore(TimeoutStoreSuite):
    @pytest.fixture
    def timeout_store(self) -> MemoryTimeoutStore:
        return MemoryTimeoutStore()


class TestMemoryConnector(ConnectorSuite):
    @pytest.fixture
    def connector_factory(self) -> object:
        def make(events: list[ConnectorEvent]) -> Connector:
            return MemoryConnector(events)

        return make


class TestWorkflowOnMemory(WorkflowSuite):
    @pytest.fixture
    def adapters(self) -> object:
        shared = Adapters(MemoryStreamer(), MemoryRecordStore(), MemoryRoleScheduler(), MemoryTimeoutStore())
        return lambda: shared


async def test_revoke_takes_the_role_and_wakes_the_holder() -> None:
    roles = MemoryRoleScheduler()
    async with roles.hold("r") as lease:
        assert roles.is_held("r")
        assert roles.revoke("r")
        await asyncio.wait_for(lease.wait_lost(), 1)
        assert not lease.held
        async with roles.hold("r") as second:
            assert second.held
    assert not roles.revoke("r")


async def test_clocks_stamp_records_and_events() -> None:
    clock = FakeClock(datetime(2031, 5, 1, tzinfo=UTC))
    store, streamer, timeouts = (
        MemoryRecordStore(clock=clock),
        MemoryStreamer(clock=clock),
        MemoryTimeoutStore(clock=clock),
    )
    await store.store(new_record("w"))
    [event] = await store.list_outbox_events("w", 1)
    assert event.created_at == clock.now()
    sender = await streamer.sender("t")
    await sender.send([event.decode()])
    receiver = await streamer.receiver("t", "n")
    assert (await receiver.recv()).created_at == clock.now()
    assert (await timeouts.create("w", "f", "r", 1, clock.now())).created_at == clock.now()


async def test_stored_records_are_copies() -> None:
    store = MemoryRecordStore()
    record = new_record("w")
    await store.store(record)
    record.status = 99
    looked_up: Record = await store.lookup(record.run_id)
    assert looked_up.status == 1
    looked_up.status = 42
    assert (await store.lookup(record.run_id)).status == 1


async def test_memory_adapters_work_across_threads() -> None:
    """A plain step runs in a worker thread; the adapters must wake waiters on the loop from there."""
    streamer = MemoryStreamer()
    receiver = await streamer.receiver("t", "n")
    sender = await streamer.sender("t")
    loop = asyncio.get_running_loop()
    waiting = asyncio.ensure_future(receiver.recv())
    await asyncio.sleep(0.01)

    def publish() -> None:
        asyncio.run(sender.send([new_outgoing()]))

    await loop.run_in_executor(None, publish)
    assert (await asyncio.wait_for(waiting, 2)).foreign_id == "thread"


def new_outgoing() -> OutgoingEvent:
    return OutgoingEvent(foreign_id="thread", type=1, headers={"topic": "t"})
