"""Waking waiters across threads and event loops: the memory adapters' state is guarded by a threading lock (a
plain step runs in a worker thread; tests may run several loops), so waiting cannot be an asyncio.Condition."""

from __future__ import annotations

import asyncio
import threading


class Notifier:
    """`await notifier.wait(seen)` returns once `notify()` was called after generation `seen`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._waiters: set[asyncio.Future[None]] = set()

    @property
    def generation(self) -> int:
        with self._lock:
            return self._generation

    def notify(self) -> None:
        with self._lock:
            self._generation += 1
            if not self._waiters:
                return  # most calls, under load (every store notifies): no set made for nobody
            waiters, self._waiters = self._waiters, set()
        for future in waiters:
            loop = future.get_loop()
            if loop.is_closed():
                continue
            try:
                if loop is _running_loop():
                    _wake(future)
                else:
                    loop.call_soon_threadsafe(_wake, future)
            except RuntimeError:
                pass  # the loop closed meanwhile: nobody is waiting there any more

    async def wait(self, seen: int) -> None:
        """Return when the generation moved past `seen` (at once if it already has)."""
        future = asyncio.get_running_loop().create_future()
        with self._lock:
            if self._generation != seen:
                return
            self._waiters.add(future)
        try:
            await future
        finally:
            with self._lock:
                self._waiters.discard(future)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
