"""The Postgres store wakes the outbox relays after its commits, outside them: each wake-up arrives once the rows
are visible, every workflow written is woken, closing the store sends what is pending, and a wake-up the server
refuses is said once and loses nothing (the rows wait in the outbox for the relay's poll)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from conveyor.adapters.postgres import PostgresRecordStore
from conveyor.adapters.postgres._store import channel
from conveyor.adapters.postgres._wake import Waker
from conveyor.testing.conformance._support import new_record


async def _listener(pg_dsn: str, *names: str) -> psycopg.AsyncConnection[Any]:
    conn = await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True)
    for name in names:
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel(name))))
    return conn


async def _woken(conn: psycopg.AsyncConnection[Any], count: int) -> set[str]:
    channels: set[str] = set()
    async with asyncio.timeout(10):
        async for notify in conn.notifies():
            channels.add(notify.channel)
            if len(channels) == count:
                return channels
    raise AssertionError("unreachable")


async def test_each_workflow_written_is_woken_once_its_rows_are_visible(pg_dsn: str) -> None:
    names = [f"wake-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    store = PostgresRecordStore(pg_dsn)
    await store.open()
    listener = await _listener(pg_dsn, *names)
    reader = await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True)
    try:
        # Concurrent stores of three workflows go as one batch, and their wake-ups as one statement.
        await asyncio.gather(*(store.store(new_record(name, "f")) for name in names))
        assert await _woken(listener, 3) == {channel(name) for name in names}
        cursor = await reader.execute("SELECT count(*) FROM conveyor_outbox WHERE workflow_name = ANY(%s)", (names,))
        assert await cursor.fetchone() == (3,)
        # An update wakes its workflow too.
        [record] = await store.list(names[0])
        moved = dataclasses.replace(
            record, status=record.status + 1, meta=dataclasses.replace(record.meta, version=record.meta.version + 1)
        )
        await store.store(moved, expected_version=record.meta.version)
        assert await _woken(listener, 1) == {channel(names[0])}
    finally:
        await listener.close()
        await reader.close()
        await store.close()


async def test_closing_the_store_sends_the_pending_wake_up(pg_dsn: str) -> None:
    name = f"wake-{uuid.uuid4().hex[:8]}"
    store = PostgresRecordStore(pg_dsn)
    await store.open()
    listener = await _listener(pg_dsn, name)
    try:
        await store.store(new_record(name, "f"))
        await store.close()  # straight after the write: the wake-up is still on its way
        assert await _woken(listener, 1) == {channel(name)}
    finally:
        await listener.close()


async def test_a_refused_wake_up_is_said_once_and_the_rows_stay_for_the_poll(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"wake-{uuid.uuid4().hex[:8]}"
    store = PostgresRecordStore(pg_dsn)
    await store.open()
    pool: AsyncConnectionPool[Any] = store.pool
    refusing = True

    def pool_or_refusal() -> AsyncConnectionPool[Any]:
        if refusing:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return pool

    waker = Waker(pool_or_refusal)
    listener = await _listener(pg_dsn, name)
    try:
        await store.store(new_record(name, "f"))
        await _woken(listener, 1)  # the store's own wake-up
        with caplog.at_level(logging.INFO, logger="conveyor.adapters.postgres"):
            for _ in range(3):
                waker.wake([channel(name)])
                await waker.drain()
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1
            assert "could not wake the outbox relays" in warnings[0].getMessage()
            assert "server closed the connection unexpectedly" in warnings[0].getMessage()
            assert [e.decode().foreign_id for e in await store.list_outbox_events(name, 10)] == ["f"]
            refusing = False
            waker.wake([channel(name)])
            await waker.drain()
            assert await _woken(listener, 1) == {channel(name)}
            assert any(r.getMessage() == "waking the outbox relays works again" for r in caplog.records)
    finally:
        await listener.close()
        await store.close()
