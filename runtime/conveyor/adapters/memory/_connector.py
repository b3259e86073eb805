"""MemoryConnector: a list of outside events that workflows consume through `add_connector`, with a committed
position per consumer name, for tests and demos of connectors."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from conveyor._core.ports import ConnectorConsumer, ConnectorEvent
from conveyor.adapters.memory._notify import Notifier


class MemoryConnector:
    def __init__(self, events: Iterable[ConnectorEvent] = ()) -> None:
        self._lock = threading.Lock()
        self._events: list[ConnectorEvent] = list(events)
        self._cursors: dict[str, int] = {}
        self._notifier = Notifier()

    def add(self, event: ConnectorEvent) -> None:
        with self._lock:
            self._events.append(event)
        self._notifier.notify()

    async def make(self, consumer_name: str) -> ConnectorConsumer:
        with self._lock:
            position = self._cursors.get(consumer_name, 0)
        return _Consumer(self, consumer_name, position)


class _Consumer:
    def __init__(self, connector: MemoryConnector, name: str, position: int) -> None:
        self._connector = connector
        self._name = name
        self._position = position
        self._delivered: dict[int, int] = {}

    async def recv(self) -> ConnectorEvent:
        c = self._connector
        while True:
            with c._lock:
                generation = c._notifier.generation
                if self._position < len(c._events):
                    event = c._events[self._position]
                    self._position += 1
                    self._delivered[id(event)] = self._position
                    return event
            await c._notifier.wait(generation)

    async def ack(self, event: ConnectorEvent) -> None:
        position = self._delivered.pop(id(event), None)
        if position is None:
            raise ValueError("ack: that event was not received by this consumer")
        c = self._connector
        with c._lock:
            if position > c._cursors.get(self._name, 0):
                c._cursors[self._name] = position

    async def close(self) -> None:
        return None
