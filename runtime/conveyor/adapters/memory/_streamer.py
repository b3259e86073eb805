"""MemoryStreamer: one in-process log per topic, a committed cursor per (topic, receiver name), and sharding by
foreign id, so it behaves as the Kafka streamer does for the engine: at-least-once, ordered per foreign id.
A foreign id's shard is `shard_of` (CRC-32 modulo the shard count), not the Kafka streamer's (its murmur2
partition's owner), so a foreign id may have another shard number here than on Kafka.

Each shard count a receiver asked for gets its own index of the log (one list per shard), so a shard reads only
its own events, as a Kafka consumer reads only its partitions. A receiver says which foreign ids are its own
(`owns`: a ShardOwningReceiver), so the engine hands runs over in-process on memory as it does on Kafka, and
tests on memory run that path too."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence

from conveyor._core.clock import Clock, SystemClock
from conveyor._core.ports import EventReceiver, EventSender, Shard
from conveyor._core.records import Event, OutgoingEvent
from conveyor._core.sharding import shard_of
from conveyor.adapters.memory._notify import Notifier

_WHOLE = Shard()


class _Topic:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.notifier = Notifier()
        # shard count -> one list of events per shard (index k-1), in log order.
        self.shards: dict[int, list[list[Event]]] = {1: [self.events]}

    def view(self, shard: Shard) -> list[Event]:
        by_count = self.shards.get(shard.count)
        if by_count is None:
            by_count = self.shards[shard.count] = [[] for _ in range(shard.count)]
            for event in self.events:
                by_count[shard_of(event.foreign_id, shard.count) - 1].append(event)
        return by_count[shard.index - 1]

    def append(self, event: Event) -> None:
        self.events.append(event)
        for count, lists in self.shards.items():
            if count > 1:
                lists[shard_of(event.foreign_id, count) - 1].append(event)


class MemoryStreamer:
    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._topics: dict[str, _Topic] = {}
        # (topic, name) -> id of the last acknowledged event (ids are per-topic positions from 1).
        self._cursors: dict[tuple[str, str], int] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _topic(self, name: str) -> _Topic:
        with self._lock:
            found = self._topics.get(name)
            if found is None:
                found = self._topics[name] = _Topic()
            return found

    async def sender(self, topic: str) -> EventSender:
        return _Sender(self, topic)

    async def receiver(
        self,
        topic: str,
        name: str,
        *,
        shard: Shard = _WHOLE,
        poll_frequency: float = 0.5,
        from_latest: bool = False,
    ) -> EventReceiver:
        log = self._topic(topic)
        with self._lock:
            committed = self._cursors.get((topic, name))
            if committed is None:
                committed = len(log.events) if from_latest else 0
                if from_latest:
                    self._cursors[(topic, name)] = committed
            view = log.view(shard)
            position = bisect.bisect_right(view, committed, key=lambda e: e.id)
        return _Receiver(self, topic, name, shard, log, view, position)

    def _append(self, topic: str, events: Sequence[OutgoingEvent]) -> None:
        log = self._topic(topic)
        now = self._clock.now()
        with self._lock:
            for outgoing in events:
                log.append(Event(len(log.events) + 1, outgoing.foreign_id, outgoing.type, dict(outgoing.headers), now))
        log.notifier.notify()

    def _commit(self, topic: str, name: str, event_id: int) -> None:
        with self._lock:
            if event_id > self._cursors.get((topic, name), 0):
                self._cursors[(topic, name)] = event_id


class _Sender:
    def __init__(self, streamer: MemoryStreamer, topic: str) -> None:
        self._streamer = streamer
        self._topic = topic

    async def send(self, events: Sequence[OutgoingEvent]) -> None:
        if events:
            self._streamer._append(self._topic, events)

    async def close(self) -> None:
        return None


class _Receiver:
    def __init__(
        self,
        streamer: MemoryStreamer,
        topic: str,
        name: str,
        shard: Shard,
        log: _Topic,
        view: list[Event],
        position: int,
    ) -> None:
        self._streamer = streamer
        self._topic = topic
        self._name = name
        self._shard = shard
        self._log = log
        self._view = view
        self._position = position

    async def recv(self) -> Event:
        log, view, lock = self._log, self._view, self._streamer._lock
        while True:
            with lock:
                if self._position < len(view):
                    event = view[self._position]
                    self._position += 1
                    return event
                generation = log.notifier.generation
            await log.notifier.wait(generation)

    def owns(self, foreign_id: str) -> bool:
        """Whether this receiver's view gets the events of `foreign_id`: `_Topic` files each event under
        `shard_of(foreign_id, count)`, and a receiver of the whole topic (count 1, where `shard_of` is 1) reads
        the log itself, which holds every event."""
        return shard_of(foreign_id, self._shard.count) == self._shard.index

    async def ack(self, event: Event) -> None:
        events = self._log.events
        if not 0 < event.id <= len(events) or events[event.id - 1] is not event:
            raise ValueError(f"ack: the event is not from topic {self._topic!r}")
        self._streamer._commit(self._topic, self._name, event.id)

    async def close(self) -> None:
        return None
