"""Group concurrent calls into one round trip: while `concurrency` batches are in flight, new calls wait and go
together in the next one. A call alone goes at once (no waiting for company), so batching costs nothing at low
load and saves a round trip and a commit per call at high load.

Items with the same key never share a batch or run in two batches at once (the store uses the run id: one
statement must not update the same row twice, and two batches must not race for it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeAlias, TypeVar

I = TypeVar("I")  # noqa: E741 - the item type
R = TypeVar("R")

# What a flush gives back per item, in order: its result, or the error to raise to that item's caller only.
Outcome: TypeAlias = R | BaseException


class Batcher(Generic[I, R]):
    def __init__(
        self,
        flush: Callable[[list[I]], Awaitable[list[Outcome[R]]]],
        *,
        key: Callable[[I], Hashable],
        concurrency: int,
        limit: int,
    ) -> None:
        self._flush = flush
        self._key = key
        self._concurrency = concurrency
        self._limit = limit
        self._queue: list[tuple[I, asyncio.Future[R]]] = []
        self._busy_keys: set[Hashable] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: I) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._start_batches()
        return await future

    def _start_batches(self) -> None:
        while self._queue and len(self._tasks) < self._concurrency:
            batch: list[tuple[I, asyncio.Future[R]]] = []
            keys: set[Hashable] = set()
            waiting: list[tuple[I, asyncio.Future[R]]] = []
            for entry in self._queue:
                key = self._key(entry[0])
                if entry[1].done():
                    continue  # its caller was cancelled before the batch went out
                if len(batch) < self._limit and key not in keys and key not in self._busy_keys:
                    batch.append(entry)
                    keys.add(key)
                else:
                    waiting.append(entry)
            self._queue = waiting
            if not batch:
                return
            self._busy_keys |= keys
            task = asyncio.ensure_future(self._run(batch, keys))
            self._tasks.add(task)

    async def _run(self, batch: list[tuple[I, asyncio.Future[R]]], keys: set[Hashable]) -> None:
        try:
            outcomes = await self._flush([item for item, _ in batch])
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._busy_keys -= keys
            task = asyncio.current_task()
            if task is not None:
                self._tasks.discard(task)
            self._start_batches()
