"""Pipelined consumption of one receiver: several events of different foreign ids are handled at once, while
each foreign id keeps its order and acknowledgements never pass an event that is not finished.

Why: handling one event at a time leaves a shard idle while it waits on the store and the streamer; most of an
event's time is round trips, not work. Why it stays safe:
- an event waits for the previous event of the same foreign id, so per-foreign-id order holds (retries too:
  a failing event keeps its successors waiting until it succeeds);
- events are acknowledged in receive order, each only once it and everything received before it are done,
  so a crash or a lost role redelivers whatever was not finished (at least once), never skips it;
- at most `window` events are received and not yet acknowledged, so a failing event throttles the receiver
  instead of letting the backlog grow.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from conveyor._core.ports import EventReceiver
from conveyor._core.records import Event

T = TypeVar("T")
Work = Callable[[Event], Awaitable[None]]


class _Slot:
    __slots__ = ("done", "event", "finished")

    def __init__(self, event: Event) -> None:
        self.event = event
        self.done = False
        # Set when handling ends (done or not): the next event of the same foreign id may start.
        self.finished = asyncio.Event()


class Pipeline:
    """Handles events of one receiver with `work`, `window` at a time at most; see the module docstring.
    `working()` wraps the handling and acknowledging of each event (the workflow's drain)."""

    def __init__(
        self,
        receiver: EventReceiver,
        work: Work,
        window: int,
        working: Callable[[], AbstractAsyncContextManager[None]],
    ) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self._receiver = receiver
        self._work = work
        self._working = working
        self._slots = asyncio.Semaphore(window)
        self._pending: collections.deque[_Slot] = collections.deque()
        self._tails: dict[str, _Slot] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._acking = asyncio.Lock()
        # The first unexpected error of an event's task (a failed ack, Stopping): it ends the pipeline.
        self._failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def reserve(self) -> None:
        """Wait for room in the window (or raise what failed meanwhile)."""
        if self._slots.locked():
            await self._unless_failed(self._slots.acquire())
        else:
            await self._slots.acquire()  # free room: returns at once

    async def recv(self) -> Event:
        """The receiver's next event (or raise what failed meanwhile)."""
        return await self._unless_failed(self._receiver.recv())

    def start(self, event: Event) -> None:
        """Handle `event` after the previous event of its foreign id; call with a slot reserved."""
        slot = _Slot(event)
        previous = self._tails.get(event.foreign_id)
        self._tails[event.foreign_id] = slot
        self._pending.append(slot)
        task = asyncio.ensure_future(self._run(slot, previous))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, slot: _Slot, previous: _Slot | None) -> None:
        try:
            if previous is not None:
                await previous.finished.wait()
            async with self._working():
                await self._work(slot.event)
                slot.done = True
                await self._ack_finished()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if not self._failed.done():
                self._failed.set_exception(exc)
        finally:
            slot.finished.set()
            if self._tails.get(slot.event.foreign_id) is slot:
                del self._tails[slot.event.foreign_id]

    async def _ack_finished(self) -> None:
        """Acknowledge, in receive order, every event that is done and has nothing unfinished before it."""
        async with self._acking:
            pending = self._pending
            while pending and pending[0].done:
                await self._receiver.ack(pending[0].event)
                pending.popleft()
                self._slots.release()

    async def _unless_failed(self, step: Awaitable[T]) -> T:
        if self._failed.done():
            self._failed.result()
        task = asyncio.ensure_future(step)
        either: set[asyncio.Future[Any]] = {task, self._failed}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            raise
        if not task.done():
            task.cancel()
            self._failed.result()
        return task.result()

    async def close(self) -> None:
        """Stop every event still being handled (their events stay unacknowledged, so they come again)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._failed.done():
            self._failed.exception()  # retrieved, so asyncio does not report it as never retrieved
