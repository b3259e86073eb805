"""EventStreamerSuite: the reference's streamer tests (StreamFromLatest) plus ours: round trips, order,
acknowledgement and redelivery, independent names, topic isolation and shard exclusivity, and, for a streamer
whose receivers are `ShardOwningReceiver`s, that `owns` names exactly the foreign ids a receiver gets (the
engine hands runs over in-process on its word)."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from conveyor._core.ports import EventReceiver, EventStreamer, Shard, ShardOwningReceiver
from conveyor._core.records import Event, OutgoingEvent
from conveyor.testing.conformance._support import unique

WAIT = 10.0


def event(foreign_id: str, kind: int = 1, topic: str = "") -> OutgoingEvent:
    return OutgoingEvent(foreign_id=foreign_id, type=kind, headers={"topic": topic, "run_id": f"run-{foreign_id}"})


async def send(streamer: EventStreamer, topic: str, *foreign_ids: str) -> None:
    sender = await streamer.sender(topic)
    try:
        await sender.send([event(f, i + 1, topic) for i, f in enumerate(foreign_ids)])
    finally:
        await sender.close()


async def take(receiver: EventReceiver, count: int, *, ack: bool = True) -> list[Event]:
    got = []
    for _ in range(count):
        item = await asyncio.wait_for(receiver.recv(), WAIT)
        if ack:
            await receiver.ack(item)
        got.append(item)
    return got


async def drain(receiver: EventReceiver, quiet: float = 3.0) -> list[Event]:
    """Receive and acknowledge until nothing arrives for `quiet` seconds."""
    got: list[Event] = []
    while True:
        try:
            item = await asyncio.wait_for(receiver.recv(), quiet)
        except TimeoutError:
            return got
        await receiver.ack(item)
        got.append(item)


async def nothing_more(receiver: EventReceiver) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(receiver.recv(), 0.3)


class EventStreamerSuite:
    """Subclass as `class TestMyStreamer(EventStreamerSuite)` and provide an `event_streamer` fixture (opened)."""

    async def test_round_trip_keeps_fields_and_per_foreign_id_order(self, event_streamer: EventStreamer) -> None:
        topic = unique("topic")
        await send(event_streamer, topic, "a", "a", "a", "b")
        receiver = await event_streamer.receiver(topic, unique("reader"))
        try:
            got = await take(receiver, 4)
        finally:
            await receiver.close()
        # Order is kept per foreign id (events of different foreign ids may interleave).
        assert [e.type for e in got if e.foreign_id == "a"] == [1, 2, 3]
        assert [(e.foreign_id, e.type) for e in got if e.foreign_id == "b"] == [("b", 4)]
        first = next(e for e in got if e.type == 1)
        assert first.headers == {"topic": topic, "run_id": "run-a"}
        assert first.run_id == "run-a"
        assert all(e.created_at.tzinfo is not None for e in got)
        assert len({e.id for e in got}) == 4

    async def test_recv_waits_for_a_send(self, event_streamer: EventStreamer) -> None:
        topic = unique("wait")
        receiver = await event_streamer.receiver(topic, unique("reader"))
        try:
            waiting = asyncio.ensure_future(receiver.recv())
            await asyncio.sleep(0.1)
            assert not waiting.done()
            await send(event_streamer, topic, "late")
            got = await asyncio.wait_for(waiting, WAIT)
            assert got.foreign_id == "late"
        finally:
            await receiver.close()

    async def test_acknowledged_events_are_not_delivered_again(self, event_streamer: EventStreamer) -> None:
        topic, name = unique("ack"), unique("reader")
        await send(event_streamer, topic, "1", "2", "3", "4")
        first = await event_streamer.receiver(topic, name)
        taken = {e.foreign_id for e in await take(first, 2)}
        await first.close()
        second = await event_streamer.receiver(topic, name)
        try:
            assert {e.foreign_id for e in await take(second, 2)} == {"1", "2", "3", "4"} - taken
            await nothing_more(second)
        finally:
            await second.close()

    async def test_unacknowledged_events_are_delivered_again(self, event_streamer: EventStreamer) -> None:
        topic, name = unique("redeliver"), unique("reader")
        await send(event_streamer, topic, "1", "2", "3")
        first = await event_streamer.receiver(topic, name)
        acked = await take(first, 1)
        await take(first, 1, ack=False)
        await first.close()
        second = await event_streamer.receiver(topic, name)
        try:
            again = {e.foreign_id for e in await take(second, 2)}
            assert again == {"1", "2", "3"} - {acked[0].foreign_id}
            await nothing_more(second)
        finally:
            await second.close()

    async def test_names_consume_independently(self, event_streamer: EventStreamer) -> None:
        topic = unique("names")
        await send(event_streamer, topic, "x", "y")
        one = await event_streamer.receiver(topic, unique("one"))
        two = await event_streamer.receiver(topic, unique("two"))
        try:
            assert {e.foreign_id for e in await take(one, 2)} == {"x", "y"}
            assert {e.foreign_id for e in await take(two, 2)} == {"x", "y"}
        finally:
            await one.close()
            await two.close()

    async def test_topics_are_isolated(self, event_streamer: EventStreamer) -> None:
        mine, other = unique("mine"), unique("other")
        await send(event_streamer, other, "not-mine")
        await send(event_streamer, mine, "mine")
        receiver = await event_streamer.receiver(mine, unique("reader"))
        try:
            assert [e.foreign_id for e in await take(receiver, 1)] == ["mine"]
            await nothing_more(receiver)
        finally:
            await receiver.close()

    async def test_from_latest_only_new_events(self, event_streamer: EventStreamer) -> None:
        topic, name = unique("latest"), unique("reader")
        await send(event_streamer, topic, "123", "456")
        receiver = await event_streamer.receiver(topic, name, from_latest=True)
        await send(event_streamer, topic, "789")
        assert [e.foreign_id for e in await take(receiver, 1)] == ["789"]
        await receiver.close()
        # Once a position is acknowledged, from_latest has no effect (the reference's second case).
        await send(event_streamer, topic, "101")
        again = await event_streamer.receiver(topic, name, from_latest=True)
        try:
            assert [e.foreign_id for e in await take(again, 1)] == ["101"]
        finally:
            await again.close()

    async def test_shards_split_every_event_exactly_once(self, event_streamer: EventStreamer) -> None:
        topic, count = unique("shards"), 3
        foreign_ids = [f"fid-{i % 37}" for i in range(300)]
        sender = await event_streamer.sender(topic)
        await sender.send([event(f, i + 1, topic) for i, f in enumerate(foreign_ids)])
        await sender.close()
        receivers = [
            await event_streamer.receiver(topic, unique(f"shard-{k}"), shard=Shard(k, count))
            for k in range(1, count + 1)
        ]
        try:
            per_shard = list(await asyncio.gather(*(drain(r) for r in receivers)))
            total = sum(len(events) for events in per_shard)
            assert total == len(foreign_ids), f"{total} of {len(foreign_ids)} events received"
        finally:
            for receiver in receivers:
                await receiver.close()
        owners: dict[str, set[int]] = defaultdict(set)
        for index, events in enumerate(per_shard):
            for item in events:
                owners[item.foreign_id].add(index)
        assert all(len(s) == 1 for s in owners.values()), "a foreign id reached two shards"
        assert sorted(e.type for events in per_shard for e in events) == list(range(1, 301))
        assert all(per_shard), "a shard got nothing"
        for events in per_shard:
            by_fid: dict[str, list[int]] = defaultdict(list)
            for item in events:
                by_fid[item.foreign_id].append(item.type)
            assert all(types == sorted(types) for types in by_fid.values()), "order per foreign id was lost"

    async def test_owns_is_true_exactly_for_the_foreign_ids_a_receiver_gets(
        self, event_streamer: EventStreamer
    ) -> None:
        topic, count = unique("owns"), 3
        foreign_ids = [f"owned-{i}" for i in range(120)]
        await send(event_streamer, topic, *foreign_ids)
        # Each shard of `count`, and a receiver of the whole topic (shard 1 of 1).
        shards = [Shard(k, count) for k in range(1, count + 1)] + [Shard()]
        receivers = [
            await event_streamer.receiver(topic, unique(f"owner-{s.index}-of-{s.count}"), shard=s) for s in shards
        ]
        try:
            if not all(isinstance(r, ShardOwningReceiver) for r in receivers):
                pytest.skip(
                    f"{type(event_streamer).__name__}'s receivers are not ShardOwningReceivers (no owns()): "
                    "nothing to check, and the engine hands no run over in-process on this streamer"
                )
            got = list(await asyncio.gather(*(drain(r) for r in receivers)))
            owning = [r for r in receivers if isinstance(r, ShardOwningReceiver)]
            assert sorted(e.foreign_id for e in got[-1]) == sorted(foreign_ids), "the whole topic was not received"
            for shard, owner, events in zip(shards, owning, got, strict=True):
                received = {e.foreign_id for e in events}
                owned = {f for f in foreign_ids if owner.owns(f)}
                assert owned == received, (
                    f"shard {shard.index} of {shard.count}: owns() but never got {sorted(owned - received)}, "
                    f"got but not owns() {sorted(received - owned)}"
                )
            assert all(sum(r.owns(f) for r in owning[:count]) == 1 for f in foreign_ids), "not one owner each"
        finally:
            for receiver in receivers:
                await receiver.close()
