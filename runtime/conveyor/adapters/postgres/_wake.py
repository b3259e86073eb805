"""Waking the outbox relays once rows are committed, outside the transaction that wrote them.

A NOTIFY inside a writing transaction holds PostgreSQL's notify lock from just before its commit record until
that record is flushed, so every transaction that notifies commits after the one before it: no group commit.
Measured here with pgbench (one-row update per transaction, 12 clients, PostgreSQL 15): 9,600 commits/s plain,
3,550/s with a NOTIFY in each transaction, 8,100/s with the NOTIFY sent after the commit as a statement of its
own (it writes nothing, so it gets no transaction id and flushes nothing).

The wake-up says what the in-transaction NOTIFY said (new outbox rows are visible), only after the commit
instead of at it. One that is lost (the process stops between the commit and the wake-up, or the server refuses
it) is caught by the relay's polling, as a lost notification always was; the rows are already durable. Wake-ups
asked while one is on its way are sent together as the next, which starts after their commits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from psycopg_pool import AsyncConnectionPool

log = logging.getLogger("conveyor.adapters.postgres")

_NOTIFY = "SELECT pg_notify(c, '') FROM unnest(%s::text[]) AS c"


class Waker:
    """Sends the NOTIFYs of committed writes, one statement at a time per store, coalescing those asked meanwhile."""

    def __init__(self, pool: Callable[[], AsyncConnectionPool[Any]]) -> None:
        self._pool = pool
        self._pending: set[str] = set()
        self._sending: asyncio.Task[None] | None = None
        self._failing = False

    def wake(self, channels: Iterable[str]) -> None:
        """Notify `channels` soon; the caller's rows are committed already, and it does not wait for this."""
        self._pending.update(channels)
        if self._pending and (self._sending is None or self._sending.done()):
            self._sending = asyncio.ensure_future(self._send())

    async def _send(self) -> None:
        while self._pending:
            channels, self._pending = sorted(self._pending), set()
            try:
                async with self._pool().connection() as conn:
                    await conn.execute(_NOTIFY, (channels,))
            except Exception as e:  # the relays' polling finds these rows; say so once per failing spell
                if not self._failing:
                    log.warning("could not wake the outbox relays (%s): they publish at their next poll", e)
                self._failing = True
                return
            if self._failing:
                log.info("waking the outbox relays works again")
            self._failing = False

    async def drain(self) -> None:
        """Wait for the wake-ups asked so far (before the store's pool closes)."""
        sending = self._sending
        if sending is not None and not sending.done():
            await asyncio.gather(sending, return_exceptions=True)
