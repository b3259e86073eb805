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
from typing import Any

from conveyor._core.ports import EventReceiver
from conveyor._core.records import Event

Work = Callable[[Event], Awaitable[None]]


class _Slot:
    __slots__ = ("done", "event", "finished")

    def __init__(self, event: Event) -> None:
        self.event = event
        self.done = False
        # Made only when a later event of the same foreign id waits on this one (most never have one); set when
        # handling ends, done or not.
        self.finished: asyncio.Event | None = None


class Pipeline:
    """Handles events of one receiver with `work`, `window` at a time at most; see the module docstring.
    `working()` wraps the handling and acknowledging of each event (the workflow's drain). An event for which
    `done_already` is true is not handled, only acknowledged in its turn."""

    def __init__(
        self,
        receiver: EventReceiver,
        work: Work,
        window: int,
        working: Callable[[], AbstractAsyncContextManager[None]],
        done_already: Callable[[Event], bool] | None = None,
    ) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self._receiver = receiver
        self._work = work
        self._working = working
        self._done_already = done_already
        # Slots free in the window, and the future `run` waits on while none is. A counter, not an
        # asyncio.Semaphore: one task takes slots, so there is one waiter at most, and the semaphore's own checks
        # cost about 1 us per event.
        self._free = window
        self._room: asyncio.Future[None] | None = None
        self._pending: collections.deque[_Slot] = collections.deque()
        self._tails: dict[str, _Slot] = {}
        # Keyed by slot, so that a task leaves without asking which task it is.
        self._tasks: dict[_Slot, asyncio.Task[None]] = {}
        self._acking = False
        self._main: asyncio.Task[Any] | None = None
        # The first unexpected error of an event's task (a failed ack, Stopping): it ends the pipeline.
        self._failure: BaseException | None = None

    async def run(
        self,
        observe: Callable[[Event], None] | None = None,
        delay: Callable[[Event], Awaitable[None]] | None = None,
    ) -> None:
        """Receive and handle events until cancelled, or until an event's handling fails unexpectedly: then raise
        that error. `delay` may hold each event back before its handling starts; `observe` sees it just before."""
        main = self._main = asyncio.current_task()
        assert main is not None
        loop = asyncio.get_running_loop()
        try:
            while True:
                # No task or wait() per event here (this is the hot path): a failing event cancels this task.
                if self._free == 0:
                    room = self._room = loop.create_future()
                    try:
                        await room
                    finally:
                        self._room = None
                self._free -= 1
                event = await self._receiver.recv()
                if delay is not None:
                    await delay(event)
                if observe is not None:
                    observe(event)
                if self._done_already is not None and event.foreign_id not in self._tails and self._done_already(event):
                    # Nothing to do for it (its work was done already, e.g. by a handoff) and nothing of its
                    # foreign id before it: it takes its place in the acknowledgement order, without a task.
                    if not self._pending and not self._acking:
                        # Nothing before it waits either (most such events): acknowledged at once, as
                        # _ack_finished would, without a slot or the coroutine.
                        await self._receiver.ack(event)
                        self._free += 1
                        continue
                    slot = _Slot(event)
                    slot.done = True
                    self._pending.append(slot)
                    await self._ack_finished()
                    continue
                self._start(event)
        except asyncio.CancelledError:
            if self._failure is not None and main.uncancel() == 0:
                raise self._failure from None
            raise

    def _start(self, event: Event) -> None:
        slot = _Slot(event)
        previous = self._tails.get(event.foreign_id)
        if previous is not None and previous.finished is None:
            previous.finished = asyncio.Event()
        self._tails[event.foreign_id] = slot
        self._pending.append(slot)
        # The task leaves the dict itself as it ends: a done callback would cost the loop one more call per event.
        self._tasks[slot] = asyncio.get_running_loop().create_task(self._run(slot, previous))

    async def _run(self, slot: _Slot, previous: _Slot | None) -> None:
        try:
            if previous is not None and previous.finished is not None:
                await previous.finished.wait()
            async with self._working():
                await self._work(slot.event)
                slot.done = True
                await self._ack_finished()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if self._failure is None:
                self._failure = exc
                if self._main is not None:
                    self._main.cancel()
        finally:
            if slot.finished is not None:
                slot.finished.set()
            if self._tails.get(slot.event.foreign_id) is slot:
                del self._tails[slot.event.foreign_id]
            del self._tasks[slot]

    async def _ack_finished(self) -> None:
        """Acknowledge, in receive order, every event that is done and has nothing unfinished before it. One
        task acknowledges at a time; it looks at the head again after each ack, so an event finished meanwhile
        by another task is acknowledged by it (no lock needed: this runs on one event loop)."""
        if self._acking:
            return
        self._acking = True
        try:
            pending = self._pending
            while pending and pending[0].done:
                await self._receiver.ack(pending[0].event)
                pending.popleft()
                self._free += 1
                room = self._room
                if room is not None and not room.done():
                    room.set_result(None)
        finally:
            self._acking = False

    async def close(self) -> None:
        """Stop every event still being handled (their events stay unacknowledged, so they come again)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
