"""Which adapter offers which optional capability of `conveyor.adapters.base` (ShardOwningReceiver,
OutboxBatchDeleter, FencingRoleScheduler), checked twice: by mypy (the annotated assignments: a changed signature
is a type error) and at run time by `isinstance`, as the engine asks. An adapter that stopped offering one would
otherwise only lose its fast path, silently. None of these needs a service: nothing here connects."""

from __future__ import annotations

from conveyor.adapters.base import (
    Event,
    EventReceiver,
    FencingRoleScheduler,
    OutboxBatchDeleter,
    RecordStore,
    RoleScheduler,
    Shard,
    ShardOwningReceiver,
)
from conveyor.adapters.kafka import _streamer as kafka_streamer
from conveyor.adapters.kubernetes import LeaseRoleScheduler
from conveyor.adapters.memory import MemoryRecordStore, MemoryRoleScheduler, MemoryStreamer
from conveyor.adapters.memory import _streamer as memory_streamer
from conveyor.adapters.postgres import PostgresRecordStore


def test_the_postgres_store_deletes_and_lists_the_outbox_in_one_round_trip() -> None:
    store: OutboxBatchDeleter = PostgresRecordStore("postgresql://nobody@localhost/unused")
    assert isinstance(store, OutboxBatchDeleter)


def test_the_lease_scheduler_fences_shard_roles() -> None:
    roles: FencingRoleScheduler = LeaseRoleScheduler()
    assert isinstance(roles, FencingRoleScheduler)


# The streamers' receiver() says EventReceiver (a subclass of a streamer may wrap its receivers in plainer ones):
# their receiver classes are checked here instead.
MEMORY_RECEIVER: type[ShardOwningReceiver] = memory_streamer._Receiver
KAFKA_RECEIVER: type[ShardOwningReceiver] = kafka_streamer._Receiver


async def test_memory_receivers_say_what_they_own() -> None:
    streamer = MemoryStreamer()
    assert isinstance(await streamer.receiver("topic", "whole"), ShardOwningReceiver)
    assert isinstance(await streamer.receiver("topic", "shard", shard=Shard(2, 3)), ShardOwningReceiver)


def test_kafka_receivers_say_what_they_own() -> None:
    # Without a broker, its class (the conformance suite checks a real receiver on a real broker).
    assert issubclass(KAFKA_RECEIVER, ShardOwningReceiver)


async def test_the_memory_store_and_scheduler_offer_no_such_capability() -> None:
    # The engine then takes its plain path: two outbox round trips per batch, and no fence (one process).
    store: RecordStore = MemoryRecordStore()
    roles: RoleScheduler = MemoryRoleScheduler()
    assert not isinstance(store, OutboxBatchDeleter)
    assert not isinstance(roles, FencingRoleScheduler)


class _PlainReceiver:
    async def recv(self) -> Event:
        raise NotImplementedError

    async def ack(self, event: Event) -> None:
        return None

    async def close(self) -> None:
        return None


def test_a_receiver_without_owns_is_not_a_shard_owning_receiver() -> None:
    receiver: EventReceiver = _PlainReceiver()
    assert isinstance(receiver, EventReceiver)
    assert not isinstance(receiver, ShardOwningReceiver)
