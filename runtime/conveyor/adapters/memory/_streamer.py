"""MemoryStreamer: one in-process log per topic, a committed cursor per (topic, receiver name), and sharding by
foreign id, so it behaves as the Kafka streamer does for the engine: at-least-once, ordered per foreign id."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from conveyor._core.clock import Clock, SystemClock
from conveyor._core.ports import EventReceiver, EventSender, Shard
from conveyor._core.records import Event, OutgoingEvent
from conveyor._core.sharding import shard_of
from conveyor.adapters.memory._notify import Notifier


class _Topic:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.notifier = Notifier()


class MemoryStreamer:
    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._topics: dict[str, _Topic] = {}
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
        shard: Shard = Shard(),
        poll_frequency: float = 0.5,
        from_latest: bool = False,
    ) -> EventReceiver:
        log = self._topic(topic)
        with self._lock:
            cursor = self._cursors.get((topic, name))
            if cursor is None:
                cursor = len(log.events) if from_latest else 0
                if from_latest:
                    self._cursors[(topic, name)] = cursor
        return _Receiver(self, topic, name, shard, log, cursor)

    def _append(self, topic: str, events: Sequence[OutgoingEvent]) -> None:
        log = self._topic(topic)
        now = self._clock.now()
        with self._lock:
            for outgoing in events:
                log.events.append(
                    Event(len(log.events) + 1, outgoing.foreign_id, outgoing.type, dict(outgoing.headers), now)
                )
        log.notifier.notify()

    def _commit(self, topic: str, name: str, position: int) -> None:
        with self._lock:
            if position > self._cursors.get((topic, name), 0):
                self._cursors[(topic, name)] = position


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
        self, streamer: MemoryStreamer, topic: str, name: str, shard: Shard, log: _Topic, position: int
    ) -> None:
        self._streamer = streamer
        self._topic = topic
        self._name = name
        self._shard = shard
        self._log = log
        self._position = position

    async def recv(self) -> Event:
        log, shard, lock = self._log, self._shard, self._streamer._lock
        while True:
            with lock:
                generation = log.notifier.generation
                events = log.events
                while self._position < len(events):
                    event = events[self._position]
                    self._position += 1
                    if shard.count == 1 or shard_of(event.foreign_id, shard.count) == shard.index:
                        return event
            await log.notifier.wait(generation)

    async def ack(self, event: Event) -> None:
        events = self._log.events
        if not 0 < event.id <= len(events) or events[event.id - 1] is not event:
            raise ValueError(f"ack: the event is not from topic {self._topic!r}")
        self._streamer._commit(self._topic, self._name, event.id)

    async def close(self) -> None:
        return None
