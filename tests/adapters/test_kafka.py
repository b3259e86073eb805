"""The Kafka streamer against the conformance suites on a real broker, plus what only it has: Kafka's partitioner,
partition ownership per shard, per-partition commits, topic creation, and a clear error for a broker not there."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from conveyor.adapters.base import Event, OutgoingEvent, Shard
from conveyor.adapters.kafka import KafkaStreamer, group_id
from conveyor.adapters.kafka._partitioner import murmur2, owned_partitions, partition_for
from conveyor.adapters.memory import MemoryRecordStore, MemoryRoleScheduler, MemoryTimeoutStore
from conveyor.errors import ServiceUnavailable
from conveyor.testing.conformance import Adapters, EventStreamerSuite, WorkflowSuite
from conveyor.testing.conformance._streamer import drain


class TestKafkaStreamer(EventStreamerSuite):
    @pytest.fixture
    async def event_streamer(self, kafka_bootstrap: str) -> AsyncIterator[KafkaStreamer]:
        streamer = KafkaStreamer(kafka_bootstrap, partitions=6)
        await streamer.open()
        yield streamer
        await streamer.close()


class TestWorkflowOnKafka(WorkflowSuite):
    @pytest.fixture
    def adapters(self, kafka_bootstrap: str) -> Callable[[], Adapters]:
        shared = Adapters(
            KafkaStreamer(kafka_bootstrap, partitions=6),
            MemoryRecordStore(),
            MemoryRoleScheduler(),
            MemoryTimeoutStore(),
        )
        return lambda: shared


def test_murmur2_matches_kafkas_java_client() -> None:
    # Values from org.apache.kafka.common.utils.UtilsTest#testMurmur2.
    cases = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        bytes([ord("a"), ord("b"), ord("c")]): 479470107,
    }
    for data, expected in cases.items():
        assert murmur2(data) == expected, data
    assert partition_for("foobar", 12) == (-790332482 & 0x7FFFFFFF) % 12


def test_every_partition_has_exactly_one_shard() -> None:
    for count in range(1, 8):
        owners = [owned_partitions(12, k, count) for k in range(1, count + 1)]
        assert sorted(p for owned in owners for p in owned) == list(range(12))
    assert group_id("orders-1-consumer-2-of-5") == "orders-1-consumer"
    assert group_id("orders-outbox-consumer") == "orders-outbox-consumer"


async def test_an_unreachable_broker_is_named() -> None:
    streamer = KafkaStreamer("127.0.0.1:9", timeout=2)
    with pytest.raises(ServiceUnavailable) as info:
        await streamer.open()
    assert "127.0.0.1:9" in str(info.value) and info.value.service == "Kafka"


async def test_topics_are_created_with_the_configured_partitions(kafka_bootstrap: str) -> None:
    streamer = KafkaStreamer(kafka_bootstrap, partitions=7)
    await streamer.open()
    try:
        topic = f"created-{uuid.uuid4().hex[:8]}"
        assert await streamer.partitions_of(topic) == 7
        sender = await streamer.sender(topic)
        await sender.send([OutgoingEvent("fid", 1, {"topic": topic})])
        receiver = await streamer.receiver(topic, f"r-{uuid.uuid4().hex[:6]}")
        event = await asyncio.wait_for(receiver.recv(), 20)
        assert event.id >> 40 == partition_for("fid", 7)
        await receiver.close()
    finally:
        await streamer.close()


async def consume_all(streamer: KafkaStreamer, topic: str, role: str, shards: int) -> list[Event]:
    receivers = [
        await streamer.receiver(topic, f"{role}-{k}-of-{shards}", shard=Shard(k, shards)) for k in range(1, shards + 1)
    ]
    try:
        return [e for got in await asyncio.gather(*(drain(r) for r in receivers)) for e in got]
    finally:
        for receiver in receivers:
            await receiver.close()


async def test_changing_the_shard_count_resumes_each_partition_where_it_was_acknowledged(kafka_bootstrap: str) -> None:
    streamer = KafkaStreamer(kafka_bootstrap, partitions=6)
    await streamer.open()
    topic, role = f"rescale-{uuid.uuid4().hex[:8]}", f"wf-{uuid.uuid4().hex[:6]}-1-consumer"
    try:
        sender = await streamer.sender(topic)
        await sender.send([OutgoingEvent(f"fid-{i}", i, {"topic": topic}) for i in range(60)])
        # Two shards consume and acknowledge everything...
        assert len(await consume_all(streamer, topic, role, 2)) == 60
        # ...then three shards take over the same partitions: nothing is delivered twice, new events arrive.
        await sender.send([OutgoingEvent(f"new-{i}", 100 + i, {"topic": topic}) for i in range(9)])
        fresh = await consume_all(streamer, topic, role, 3)
        assert sorted(e.type for e in fresh) == list(range(100, 109))
    finally:
        await streamer.close()


async def test_acks_are_coalesced_and_close_commits_the_last_of_each_partition(kafka_bootstrap: str) -> None:
    streamer = KafkaStreamer(kafka_bootstrap, partitions=6)
    await streamer.open()
    try:
        topic, name = f"coalesce-{uuid.uuid4().hex[:8]}", f"r-{uuid.uuid4().hex[:6]}"
        sender = await streamer.sender(topic)
        await sender.send([OutgoingEvent(f"fid-{i % 17}", 1, {"topic": topic}) for i in range(300)])
        first = await streamer.receiver(topic, name)
        # ack() does not wait for the broker: 250 acks cost far fewer commits than 250 round trips.
        for _ in range(250):
            await first.ack(await asyncio.wait_for(first.recv(), 20))
        await first.close()
        second = await streamer.receiver(topic, name)
        try:
            assert len(await drain(second)) == 50
        finally:
            await second.close()
    finally:
        await streamer.close()


def test_a_bad_commit_interval_is_named() -> None:
    from conveyor.errors import InvalidInput

    for bad in (-1, "0.2", True, None):
        with pytest.raises(InvalidInput) as info:
            KafkaStreamer("127.0.0.1:9", commit_interval=bad)  # type: ignore[arg-type]
        assert info.value.field == "commit_interval"


async def test_commits_go_at_most_once_per_interval_and_close_commits_at_once(kafka_bootstrap: str) -> None:
    from confluent_kafka import Consumer, TopicPartition

    interval = 3.0
    streamer = KafkaStreamer(kafka_bootstrap, partitions=1, commit_interval=interval)
    await streamer.open()
    topic, name = f"paced-{uuid.uuid4().hex[:8]}", f"r-{uuid.uuid4().hex[:6]}"
    watcher = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group_id(name)})

    def committed() -> int:
        return int(watcher.committed([TopicPartition(topic, 0)], timeout=10)[0].offset)

    async def until_committed(offset: int) -> None:
        async with asyncio.timeout(20):
            while await asyncio.to_thread(committed) != offset:
                await asyncio.sleep(0.05)

    try:
        sender = await streamer.sender(topic)
        await sender.send([OutgoingEvent("fid", i, {"topic": topic}) for i in range(12)])
        receiver = await streamer.receiver(topic, name)
        events = [await asyncio.wait_for(receiver.recv(), 20) for _ in range(12)]
        # After a quiet spell the first ack is committed at once...
        await receiver.ack(events[0])
        await until_committed(1)
        # ...the next ones wait for the interval, and go together in one request.
        for event in events[1:6]:
            await receiver.ack(event)
        assert await asyncio.to_thread(committed) == 1
        await until_committed(6)
        # close() does not wait out the interval: what is noted is committed as it closes.
        for event in events[6:]:
            await receiver.ack(event)
        started = asyncio.get_running_loop().time()
        await receiver.close()
        assert asyncio.get_running_loop().time() - started < interval
        assert await asyncio.to_thread(committed) == 12
    finally:
        watcher.close()
        await streamer.close()
