"""PostgresTimeoutStore: scheduled timeouts in PostgreSQL, created idempotently (a unique key per run, status,
timer and record version), listed for firing by a partial index on the ones not yet completed."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from conveyor._core.clock import Clock, SystemClock
from conveyor._core.records import TimeoutRecord
from conveyor.adapters.postgres._connect import acquire_pool, release_pool
from conveyor.errors import InvalidInput, TimeoutNotFound, WorkflowNotRunning

_COLUMNS = "id, workflow_name, foreign_id, run_id, status, expire_at, created_at, completed, timer, record_version"


def _row(r: tuple[Any, ...]) -> TimeoutRecord:
    return TimeoutRecord(
        id=r[0],
        workflow_name=r[1],
        foreign_id=r[2],
        run_id=r[3],
        status=r[4],
        expire_at=r[5],
        created_at=r[6],
        completed=r[7],
        timer=r[8],
        record_version=r[9],
    )


class PostgresTimeoutStore:
    def __init__(self, dsn: str, *, clock: Clock | None = None, pool_size: int = 4) -> None:
        if not isinstance(dsn, str) or not dsn.strip():
            raise InvalidInput("dsn", "a PostgreSQL connection string, e.g. postgresql://user@host:5432/db", dsn)
        self._dsn = dsn
        self._clock = clock or SystemClock()
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool[Any] | None = None
        self._opens = 0

    async def open(self) -> None:
        if self._opens == 0:
            self._pool = await acquire_pool(self._dsn, self._pool_size)
        self._opens += 1

    async def close(self) -> None:
        if self._opens == 0:
            return
        self._opens -= 1
        if self._opens == 0 and self._pool is not None:
            pool, self._pool = self._pool, None
            await release_pool(pool)

    async def _fetch(self, query: str, params: Any) -> builtins.list[tuple[Any, ...]]:
        if self._pool is None:
            raise WorkflowNotRunning("the Postgres timeout store is not open")
        async with self._pool.connection() as conn:
            cursor = await conn.execute(query, params)
            return await cursor.fetchall() if cursor.description is not None else []

    async def create(
        self,
        workflow_name: str,
        foreign_id: str,
        run_id: str,
        status: int,
        expire_at: datetime,
        *,
        timer: int = 0,
        record_version: int = 0,
    ) -> TimeoutRecord:
        rows = await self._fetch(
            f"""
            WITH created AS (
                INSERT INTO conveyor_timeouts
                    (workflow_name, foreign_id, run_id, status, timer, record_version, expire_at, created_at)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (workflow_name, run_id, status, timer, record_version) DO NOTHING
                RETURNING {_COLUMNS}
            )
            SELECT {_COLUMNS} FROM created
            UNION ALL
            SELECT {_COLUMNS} FROM conveyor_timeouts
            WHERE workflow_name = %s AND run_id = %s AND status = %s AND timer = %s AND record_version = %s
            LIMIT 1
            """,
            (
                workflow_name,
                foreign_id,
                run_id,
                status,
                timer,
                record_version,
                expire_at,
                self._clock.now(),
                workflow_name,
                run_id,
                status,
                timer,
                record_version,
            ),
        )
        return _row(rows[0])

    async def complete(self, timeout_id: int) -> None:
        if not await self._fetch(
            "UPDATE conveyor_timeouts SET completed = true WHERE id = %s RETURNING id", (timeout_id,)
        ):
            raise TimeoutNotFound(f"no timeout {timeout_id}")

    async def cancel(self, timeout_id: int) -> None:
        if not await self._fetch("DELETE FROM conveyor_timeouts WHERE id = %s RETURNING id", (timeout_id,)):
            raise TimeoutNotFound(f"no timeout {timeout_id}")

    async def list(self, workflow_name: str) -> builtins.list[TimeoutRecord]:
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM conveyor_timeouts WHERE workflow_name = %s ORDER BY id", (workflow_name,)
        )
        return [_row(r) for r in rows]

    async def list_valid(self, workflow_name: str, status: int, now: datetime) -> builtins.list[TimeoutRecord]:
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM conveyor_timeouts "
            "WHERE workflow_name = %s AND status = %s AND NOT completed AND expire_at <= %s ORDER BY id",
            (workflow_name, status, now),
        )
        return [_row(r) for r in rows]
