"""A clock that moves only when the test moves it, so back-off, timeouts, schedules and lag are tested without
sleeping."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from datetime import UTC, datetime, timedelta


class FakeClock:
    """`now()` stays put until `advance()` or `set()`; `sleep()` returns once the clock has moved past its end.

    Safe to share between event loops and threads (a sync step may read it from a worker thread)."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2024, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("start: expected a timezone-aware datetime")
        self._now = start
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    async def sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            deadline = self._now + timedelta(seconds=max(0.0, seconds))
            if deadline <= self._now:
                future = None
            else:
                future = loop.create_future()
                heapq.heappush(self._sleepers, (deadline, next(self._counter), future))
        if future is None:
            await asyncio.sleep(0)
            return
        await future

    @property
    def sleepers(self) -> int:
        """How many sleeps are waiting for the clock to move (handy to wait until a process is idle)."""
        with self._lock:
            return sum(1 for _, _, f in self._sleepers if not f.done())

    def sleeping_until(self, when: datetime) -> int:
        """How many sleeps end exactly at `when`: wait until a particular back-off has begun
        (`clock.sleeping_until(clock.now() + err_backoff)`), which other processes' polling cannot be mistaken for.
        """
        with self._lock:
            return sum(1 for deadline, _, f in self._sleepers if deadline == when and not f.done())

    def advance(self, delta: timedelta | float) -> datetime:
        """Move forward by `delta` (seconds or timedelta) and wake every sleep that ends by then."""
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=delta)
        if delta < timedelta(0):
            raise ValueError("delta: expected a positive duration")
        with self._lock:
            self._now += delta
            return self._wake_locked()

    def set(self, when: datetime) -> datetime:
        """Jump to `when`, which may not be earlier than now."""
        with self._lock:
            if when < self._now:
                raise ValueError("when: expected a time not before the clock's current time")
            self._now = when
            return self._wake_locked()

    def _wake_locked(self) -> datetime:
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.get_loop().call_soon_threadsafe(_resolve, future)
        return self._now


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
