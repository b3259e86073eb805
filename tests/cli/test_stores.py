"""`open_when_ready`, the one way `conveyor ui` and `conveyor worker` wait for their database under
--wait-for-store, without a database: it tries again while the store is unreachable or not migrated, says a new
reason at once and the same one at most every WAIT_LOG_INTERVAL, and gives up at once on anything else."""

from __future__ import annotations

import asyncio
import logging

import pytest

from conveyor.adapters.memory import MemoryRecordStore
from conveyor.cli._stores import WAIT_LOG_INTERVAL, open_when_ready
from conveyor.errors import SchemaNotMigrated, ServiceUnavailable

DOWN = ServiceUnavailable("PostgreSQL", "pg:5432/conveyor", "connection refused")
BARE = SchemaNotMigrated("the database at pg:5432/conveyor has no current conveyor schema: run `conveyor db migrate`")


class Store(MemoryRecordStore):
    """A store whose open() fails with each of `failures` in turn, then opens; a clock that moves 2 s an attempt."""

    def __init__(self, *failures: Exception) -> None:
        super().__init__()
        self.failures = list(failures)
        self.attempts = 0
        self.now = 0.0

    async def open(self) -> None:
        self.attempts += 1
        self.now += 2.0
        if self.failures:
            raise self.failures.pop(0)
        await super().open()


async def test_it_waits_through_an_unreachable_then_unmigrated_database_saying_each_reason_once() -> None:
    store = Store(DOWN, DOWN, DOWN, BARE, BARE)
    lines: list[tuple[int, str]] = []
    reasons: list[str] = []

    async def wait() -> None:
        await open_when_ready(
            store,
            lambda level, line: lines.append((level, line)),
            waiting=reasons.append,
            retry=0,
            monotonic=lambda: store.now,
        )

    await asyncio.wait_for(wait(), 5)
    assert store.attempts == 6
    assert reasons == [str(DOWN)] * 3 + [str(BARE)] * 2  # every attempt, for /readyz
    assert lines == [
        (logging.WARNING, f"waiting for the record store: {DOWN}"),
        (logging.WARNING, f"waiting for the record store: {BARE}"),
        (logging.INFO, "the record store is open"),
    ]


async def test_a_long_wait_is_said_again_every_interval_with_the_attempts_since() -> None:
    attempts = int(WAIT_LOG_INTERVAL // 2) * 2 + 1  # a minute's worth at one attempt every 2 s, and one more
    store = Store(*[DOWN] * attempts)
    lines: list[str] = []
    await open_when_ready(store, lambda level, line: lines.append(line), retry=0, monotonic=lambda: store.now)
    interval = int(WAIT_LOG_INTERVAL)
    assert lines == [
        f"waiting for the record store: {DOWN}",
        f"waiting for the record store: {DOWN} (still: {interval // 2} more attempts in {interval} s)",
        f"waiting for the record store: {DOWN} (still: {interval // 2} more attempts in {interval} s)",
        "the record store is open",
    ]


async def test_an_open_store_at_the_first_attempt_says_nothing() -> None:
    store = Store()
    lines: list[str] = []
    await open_when_ready(store, lambda level, line: lines.append(line), retry=0)
    assert (store.attempts, lines) == (1, [])


async def test_anything_but_an_unreachable_or_unmigrated_database_is_raised_at_once() -> None:
    store = Store(DOWN, PermissionError("permission denied for table conveyor_migrations"))
    lines: list[str] = []
    with pytest.raises(PermissionError):
        await open_when_ready(store, lambda level, line: lines.append(line), retry=0)
    assert store.attempts == 2
    # The UI waits through anything (a grant given later too): it asks to.
    store = Store(PermissionError("permission denied for table conveyor_migrations"))
    await open_when_ready(store, lambda level, line: lines.append(line), retry=0, patient_with=(Exception,))
    assert lines[-2:] == [
        "waiting for the record store: PermissionError: permission denied for table conveyor_migrations",
        "the record store is open",
    ]


async def test_cancelled_while_waiting_it_leaves_the_store_closed() -> None:
    store = Store(*[DOWN] * 1000)
    waiting = asyncio.ensure_future(open_when_ready(store, lambda level, line: None, retry=0.01))
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert 1 < store.attempts < 1000
