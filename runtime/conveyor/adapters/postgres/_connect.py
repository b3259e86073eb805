"""Connecting: one pool per DSN and event loop, shared by the record store and timeout store of a process and
counted by open/close; clear errors naming the server (password masked) when it cannot be reached.

A pool's idle connections are checked every few seconds in the background: after the server restarts (a crash, a
failover, a pod rescheduled) the connections it dropped are replaced while they idle, instead of failing the
first step that takes each of them, minutes later, into its process's error back-off."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from conveyor.errors import SchemaNotMigrated, ServiceUnavailable

CONNECT_TIMEOUT = 10
IDLE_CHECK_INTERVAL = 5.0  # seconds between checks of a pool's idle connections (one empty query each)

log = logging.getLogger("conveyor.adapters.postgres")


def describe(dsn: str) -> str:
    """host:port/dbname of a DSN, never its password."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        parsed = urlsplit(dsn)
        return f"{parsed.hostname or '?'}:{parsed.port or 5432}{parsed.path or ''}"
    host = parts.get("host") or parts.get("hostaddr") or "localhost"
    return f"{host}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"


def _settings() -> dict[str, Any]:
    # UTC sessions so timestamps come back in UTC, whatever the server's default.
    return {"options": "-c TimeZone=UTC", "connect_timeout": CONNECT_TIMEOUT}


async def connect(dsn: str, *, autocommit: bool = False) -> psycopg.AsyncConnection[Any]:
    try:
        return await psycopg.AsyncConnection.connect(dsn, autocommit=autocommit, **_settings())
    except psycopg.ProgrammingError as e:
        raise ServiceUnavailable("PostgreSQL", "<the given DSN>", f"the DSN is not valid: {e}") from None
    except psycopg.OperationalError as e:
        raise ServiceUnavailable("PostgreSQL", describe(dsn), _first_line(e)) from None


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


class _Shared:
    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self.pool = pool
        self.users = 0
        self.checker = asyncio.create_task(_check_idle(pool), name="conveyor-postgres-idle-check")

    async def close(self) -> None:
        self.checker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.checker
        await self.pool.close()


async def _check_idle(pool: AsyncConnectionPool[Any]) -> None:
    # Connections in use are not touched: pool.check() tests only those waiting in the pool.
    while True:
        await asyncio.sleep(IDLE_CHECK_INTERVAL)
        try:
            await pool.check()
        except Exception as e:  # a server that is down now is the next use's to report
            log.debug("checking the pool's idle connections failed: %s", _first_line(e))


_pools: dict[tuple[str, int, int], _Shared] = {}


async def acquire_pool(dsn: str, size: int) -> AsyncConnectionPool[Any]:
    """The process's pool for this DSN on this event loop, opened (and the schema checked) on first use."""
    loop = asyncio.get_running_loop()
    key = (dsn, size, id(loop))
    shared = _pools.get(key)
    if shared is None:
        # Check reachability and schema with one plain connection first: a pool would only say "timed out".
        async with await connect(dsn, autocommit=True) as conn:
            from conveyor.adapters.postgres._schema import schema_is_current

            if not await schema_is_current(conn):
                raise SchemaNotMigrated(
                    f"the database at {describe(dsn)} has no current conveyor schema: run `conveyor db migrate`"
                )
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            dsn, min_size=1, max_size=size, kwargs={"autocommit": True, **_settings()}, open=False
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except Exception as e:
            await pool.close()
            raise ServiceUnavailable("PostgreSQL", describe(dsn), _first_line(e)) from None
        shared = _pools[key] = _Shared(pool)
    shared.users += 1
    return shared.pool


async def release_pool(pool: AsyncConnectionPool[Any]) -> None:
    for key, shared in list(_pools.items()):
        if shared.pool is pool:
            shared.users -= 1
            if shared.users <= 0:
                del _pools[key]
                await shared.close()
            return
