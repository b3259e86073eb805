"""KafkaStreamer: events on Apache Kafka through confluent-kafka.

- Topics are created when first used, with the configured partition count.
- Key = foreign id; the partition is Kafka's default for that key (murmur2), chosen by us and passed explicitly.
- Value = a JSON object with the event's "type" and "headers" (and, for an event from the outbox, which is
  published as the outbox stored it, its "foreign_id"); the headers are also the message's Kafka headers.
- Shard k of n is assigned (not subscribed) the partitions p with p % n == k - 1, so it never sees another
  shard's events and no rebalance can hand it one.
- ack() only notes the partition's new position (the engine acks after its transaction committed); a
  background commit sends the latest noted position of every partition in one request, one request at a time
  and at most once per `commit_interval` (the first ack after a quiet spell goes at once), so acks coalesce
  instead of costing a broker round trip each: under load, a dozen receivers committing back to back were a
  good part of the broker's CPU. close() commits what is still noted. A crash between an ack and its commit
  redelivers those events (at most about `commit_interval` of them), which the engine skips as stale.
  Never committed automatically. Offsets are committed under the receiver's name without its "-k-of-n"
  suffix, so when the shard count changes, a partition's new owner resumes exactly where the old owner
  acknowledged.
- librdkafka settings: `client_config` (every client), `producer_config`, `consumer_config`; see _config.py for
  the defaults and the settings conveyor keeps for itself.
- Blocking client calls run on a thread pool of their own, never the loop's default one (which runs plain steps).
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import pydantic_core
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from conveyor._core.clock import Clock, SystemClock
from conveyor._core.ports import EventReceiver, EventSender, Shard
from conveyor._core.records import Event, OutgoingEvent, compact_json
from conveyor.adapters.kafka._config import ClientConfigs
from conveyor.adapters.kafka._partitioner import owned_partitions, partition_for
from conveyor.errors import InvalidInput, ServiceUnavailable

T = TypeVar("T")

# Event ids: (partition << 40) | offset — unique within a topic, and they say where to commit.
_OFFSET_BITS = 40
_OFFSET_MASK = (1 << _OFFSET_BITS) - 1
_POLL_SECONDS = 0.2
_SHARD_SUFFIX = re.compile(r"-\d+-of-\d+$")
_WHOLE = Shard()

_executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="conveyor-kafka")


async def _blocking(fn: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_executor, fn, *args)


def group_id(receiver_name: str) -> str:
    """The consumer group that holds a receiver's offsets: its name without a trailing "-k-of-n"."""
    return _SHARD_SUFFIX.sub("", receiver_name)


class KafkaStreamer:
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        partitions: int = 12,
        replication_factor: int = 1,
        clock: Clock | None = None,
        client_config: Mapping[str, Any] | None = None,
        producer_config: Mapping[str, Any] | None = None,
        consumer_config: Mapping[str, Any] | None = None,
        timeout: float = 10.0,
        commit_interval: float = 0.2,
    ) -> None:
        if not isinstance(bootstrap_servers, str) or not bootstrap_servers.strip():
            raise InvalidInput("bootstrap_servers", "host:port[,host:port...]", bootstrap_servers)
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise InvalidInput("partitions", "an integer >= 1", partitions)
        if isinstance(replication_factor, bool) or not isinstance(replication_factor, int) or replication_factor < 1:
            raise InvalidInput("replication_factor", "an integer >= 1", replication_factor)
        if isinstance(commit_interval, bool) or not isinstance(commit_interval, int | float) or commit_interval < 0:
            raise InvalidInput("commit_interval", "a number of seconds >= 0", commit_interval)
        self.bootstrap_servers = bootstrap_servers
        self.commit_interval = float(commit_interval)
        self.partitions = partitions
        self.replication_factor = replication_factor
        self._clock = clock or SystemClock()
        self._configs = ClientConfigs(bootstrap_servers, client_config, producer_config, consumer_config)
        self._timeout = timeout
        self._admin: AdminClient | None = None
        self._producer: Producer | None = None
        self._topics: dict[str, int] = {}
        self._topic_lock = threading.Lock()
        self._opens = 0

    async def open(self) -> None:
        if self._opens == 0:
            try:
                admin = AdminClient(self._configs.admin)
            except KafkaException as e:
                raise self._configs.refusal(e, "client_config") or e from None
            try:
                await _blocking(admin.list_topics, None, self._timeout)
            except KafkaException as e:
                raise ServiceUnavailable("Kafka", self.bootstrap_servers, str(e.args[0])) from None
            try:
                producer = Producer(self._configs.producer)
            except KafkaException as e:
                raise self._configs.refusal(e, "client_config", "producer_config") or e from None
            self._admin = admin
            self._producer = producer
        self._opens += 1

    async def close(self) -> None:
        if self._opens == 0:
            return
        self._opens -= 1
        if self._opens == 0 and self._producer is not None:
            producer, self._producer = self._producer, None
            await _blocking(producer.flush, self._timeout)
            self._admin = None

    def _require_open(self) -> tuple[AdminClient, Producer]:
        if self._admin is None or self._producer is None:
            from conveyor.errors import WorkflowNotRunning

            raise WorkflowNotRunning("the Kafka streamer is not open")
        return self._admin, self._producer

    async def partitions_of(self, topic: str) -> int:
        """The topic's partition count, creating the topic (with `partitions`) if it does not exist."""
        known = self._topics.get(topic)
        if known is not None:
            return known
        admin, _ = self._require_open()
        count = int(await _blocking(self._ensure_topic, admin, topic))
        self._topics[topic] = count
        return count

    def _ensure_topic(self, admin: AdminClient, topic: str) -> int:
        with self._topic_lock:
            metadata = admin.list_topics(topic, self._timeout)
            found = metadata.topics.get(topic)
            if found is None or found.error is not None:
                futures = admin.create_topics(
                    [NewTopic(topic, self.partitions, self.replication_factor)], operation_timeout=self._timeout
                )
                try:
                    futures[topic].result(self._timeout)
                except KafkaException as e:
                    if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                        raise
                for _ in range(50):
                    found = admin.list_topics(topic, self._timeout).topics.get(topic)
                    if found is not None and found.error is None and found.partitions:
                        break
                    threading.Event().wait(0.1)
            assert found is not None
            return len(found.partitions)

    async def sender(self, topic: str) -> EventSender:
        count = await self.partitions_of(topic)
        _, producer = self._require_open()
        return _Sender(producer, topic, count, self._clock, self._timeout)

    async def receiver(
        self,
        topic: str,
        name: str,
        *,
        shard: Shard = _WHOLE,
        poll_frequency: float = 0.5,
        from_latest: bool = False,
    ) -> EventReceiver:
        count = await self.partitions_of(topic)
        owned = owned_partitions(count, shard.index, shard.count)
        try:
            consumer = Consumer(self._configs.consumer(group_id(name)))
        except KafkaException as e:
            raise self._configs.refusal(e, "client_config", "consumer_config") or e from None
        try:
            starts = await _blocking(self._start_offsets, consumer, topic, owned, from_latest)
            consumer.assign(starts)
        except BaseException:
            await _blocking(consumer.close)
            raise
        return _Receiver(consumer, topic, count, set(owned), self._timeout, self.commit_interval)

    def _start_offsets(
        self, consumer: Consumer, topic: str, owned: list[int], from_latest: bool
    ) -> list[TopicPartition]:
        committed = _retrying(
            lambda: consumer.committed([TopicPartition(topic, p) for p in owned], timeout=self._timeout),
            self._timeout,
        )
        starts, established = [], []
        for tp in committed:
            if tp.offset >= 0:
                starts.append(TopicPartition(topic, tp.partition, tp.offset))
            elif from_latest:
                # Resolved now, not at the first fetch: an event sent after receiver() returns must be seen.
                # Retried: a topic created a moment ago may not have elected its partitions' leaders yet.
                _, high = _retrying(
                    partial(consumer.get_watermark_offsets, TopicPartition(topic, tp.partition), timeout=self._timeout),
                    self._timeout,
                )
                starts.append(TopicPartition(topic, tp.partition, high))
                established.append(TopicPartition(topic, tp.partition, high))
            else:
                starts.append(TopicPartition(topic, tp.partition, OFFSET_BEGINNING))
        if established:
            # The starting position is the receiver's from now on, as if acknowledged: a later receiver of the
            # same name resumes here instead of jumping to a newer end.
            _retrying(lambda: consumer.commit(offsets=established, asynchronous=False), self._timeout)
        return starts


class _Sender:
    def __init__(self, producer: Producer, topic: str, partitions: int, clock: Clock, timeout: float) -> None:
        self._producer = producer
        self._topic = topic
        self._partitions = partitions
        self._clock = clock
        self._timeout = timeout

    async def send(self, events: Sequence[OutgoingEvent]) -> None:
        if not events:
            return
        failures: list[str] = []

        def delivered(error: KafkaError | None, _: Message) -> None:
            if error is not None:
                failures.append(str(error))

        timestamp = int(self._clock.now().timestamp() * 1000)
        for event in events:
            # An event from the outbox is published as stored (its foreign id too, which receivers ignore): no
            # second encoding per event.
            value = event.data
            if value is None:
                value = compact_json({"type": int(event.type), "headers": dict(event.headers)})
            self._producer.produce(
                self._topic,
                value=value,
                key=event.foreign_id.encode(),
                partition=partition_for(event.foreign_id, self._partitions),
                headers=[(k, v.encode()) for k, v in event.headers.items()],
                timestamp=timestamp,
                on_delivery=delivered,
            )
        remaining = await _blocking(self._producer.flush, self._timeout)
        if remaining or failures:
            reason = failures[0] if failures else f"{remaining} events not delivered within {self._timeout}s"
            raise ServiceUnavailable("Kafka", self._topic, f"publishing failed: {reason}")

    async def close(self) -> None:
        return None


class _Receiver:
    def __init__(
        self, consumer: Consumer, topic: str, partitions: int, owned: set[int], timeout: float, commit_interval: float
    ) -> None:
        self._consumer = consumer
        self._topic = topic
        self._partitions = partitions
        self._owned = owned
        self._timeout = timeout
        self._buffer: list[Message] = []
        self._polling: asyncio.Future[Any] | None = None
        self._closed = False
        self._acked: dict[int, int] = {}  # partition -> next offset to read, noted by ack(), not yet committed
        self._committing: asyncio.Future[None] | None = None
        self._commit_error: BaseException | None = None
        self._commit_interval = commit_interval
        self._last_commit = -math.inf  # time.monotonic() when the last commit request went out
        self._in_request = False

    async def recv(self) -> Event:
        while not self._buffer:
            # poll() returns as soon as one message is there; then take whatever else is already fetched.
            if self._polling is None:
                self._polling = asyncio.ensure_future(_blocking(self._consumer.poll, _POLL_SECONDS))
            # Shielded: if this call is cancelled, the next one takes the polled message rather than losing it.
            message = await asyncio.shield(self._polling)
            self._polling = None
            if message is None:
                continue
            batch = [message, *self._consumer.consume(499, 0)]
            for item in batch:
                error = item.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise ServiceUnavailable("Kafka", self._topic, f"consuming failed: {error}")
                self._buffer.append(item)
        return _to_event(self._buffer.pop(0))

    def owns(self, foreign_id: str) -> bool:
        """Whether this receiver's shard gets the events of `foreign_id` (the engine hands such runs straight
        from step to step within a process)."""
        return partition_for(foreign_id, self._partitions) in self._owned

    async def ack(self, event: Event) -> None:
        partition, offset = event.id >> _OFFSET_BITS, event.id & _OFFSET_MASK
        if partition not in self._owned:
            raise ValueError(f"ack: event {event.id} is not from a partition of this receiver")
        if self._commit_error is not None:
            # A background commit failed: fail like a synchronous commit would, so the process restarts.
            error, self._commit_error = self._commit_error, None
            raise ServiceUnavailable("Kafka", self._topic, f"committing offsets failed: {error}") from error
        if offset + 1 > self._acked.get(partition, -1):
            self._acked[partition] = offset + 1
        if self._committing is None or self._committing.done():
            self._committing = asyncio.ensure_future(self._commit_noted())

    async def _commit_noted(self) -> None:
        """Commit the noted positions until none is left; acks noted meanwhile go in the next request."""
        while self._acked:
            pause = self._last_commit + self._commit_interval - time.monotonic()
            if pause > 0:
                # Cancelled here by close(), nothing is lost: the noted positions are still in self._acked.
                await asyncio.sleep(pause)
            noted, self._acked = self._acked, {}
            self._last_commit = time.monotonic()
            self._in_request = True
            try:
                await _blocking(self._commit, noted)
            except Exception as e:
                # Keep what was not committed (newer notes win) and report the error at the next ack().
                for partition, offset in noted.items():
                    if offset > self._acked.get(partition, -1):
                        self._acked[partition] = offset
                self._commit_error = e
                return
            finally:
                self._in_request = False

    def _commit(self, noted: dict[int, int]) -> None:
        offsets = [TopicPartition(self._topic, partition, offset) for partition, offset in noted.items()]
        _retrying(lambda: self._consumer.commit(offsets=offsets, asynchronous=False), self._timeout)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._polling is not None:
            # The client is not safe to close while a thread still polls it.
            await asyncio.gather(self._polling, return_exceptions=True)
        try:
            if self._committing is not None:
                if not self._in_request:
                    self._committing.cancel()  # pausing between requests: commit below without waiting
                await asyncio.gather(self._committing, return_exceptions=True)
            if self._acked:
                # What was acknowledged is committed before the next receiver of this name starts.
                noted, self._acked = self._acked, {}
                await _blocking(self._commit, noted)
        finally:
            await _blocking(self._consumer.close)


_RETRIABLE = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
}


def _retrying(call: Callable[[], T], timeout: float) -> T:
    """Retry a blocking client call on the errors a broker gives while it starts or moves a coordinator."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            return call()
        except KafkaException as e:
            error = e.args[0]
            if (error.code() not in _RETRIABLE and not error.retriable()) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def _to_event(message: Message) -> Event:
    # pydantic's JSON parser: a few times faster than the json module's, for every event received.
    body = pydantic_core.from_json(message.value() or b"{}")
    key = message.key()
    _, millis = message.timestamp()
    partition, offset = message.partition(), message.offset()
    assert partition is not None and offset is not None
    return Event(
        id=(partition << _OFFSET_BITS) | offset,
        foreign_id=key.decode() if isinstance(key, bytes) else str(key or ""),
        type=int(body.get("type", 0)),
        headers=body.get("headers", {}),
        created_at=datetime.fromtimestamp(millis / 1000, UTC),
    )
