"""Keeping processes alive: each process runs only while it holds its role, restarts after a back-off when it
fails, stops at once when its role is lost, and lets its current event finish when the workflow stops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from conveyor._core.ports import RoleLease


class Stopping(Exception):
    """Raised inside a process when the workflow is stopping and the process should leave."""


class Drain:
    """Tracks the processes busy with an event, so stop() can let them finish before cancelling everyone."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._working = _Working(self)

    def working(self) -> _Working:
        """`async with drain.working():` around the handling of one event."""
        return self._working

    async def _enter(self) -> None:
        if self.stopping.is_set():
            # Hold here until stop() cancels us: starting new work now could not finish in time.
            await asyncio.Event().wait()
        self._busy += 1
        self._idle.clear()

    def _exit(self) -> None:
        self._busy -= 1
        if self._busy == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def sleep(self, sleeper: Callable[[float], Awaitable[None]], seconds: float) -> None:
        """Sleep, unless the workflow starts stopping first (then raise Stopping)."""
        if self.stopping.is_set():
            raise Stopping
        sleep_task = asyncio.ensure_future(sleeper(seconds))
        stop_task = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({sleep_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleep_task.cancel()
            stop_task.cancel()
        if self.stopping.is_set():
            raise Stopping


class _Working:
    """A reusable async context manager (cheaper than a generator-based one on the per-event path)."""

    __slots__ = ("_drain",)

    def __init__(self, drain: Drain) -> None:
        self._drain = drain

    async def __aenter__(self) -> None:
        # Drain._enter, written out: one coroutine less for every event.
        drain = self._drain
        if drain.stopping.is_set():
            await drain._enter()
            return
        drain._busy += 1
        drain._idle.clear()

    async def __aexit__(self, *exc: object) -> None:
        self._drain._exit()


async def until_lost(body: Awaitable[None], lease: RoleLease) -> bool:
    """Run `body` while `lease` is held. Returns True if the role was lost (body cancelled), False if the body
    finished first."""
    body_task = asyncio.ensure_future(body)
    lost_task = asyncio.ensure_future(lease.wait_lost())
    try:
        await asyncio.wait({body_task, lost_task}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        body_task.cancel()
        lost_task.cancel()
        with contextlib.suppress(BaseException):
            await body_task
        raise
    if body_task.done():
        lost_task.cancel()
        body_task.result()
        return False
    body_task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Stopping):
        await body_task
    return True


async def first_of(*awaitables: Awaitable[object]) -> None:
    """Wait until any of `awaitables` completes, then cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
