"""PostgresRecordStore: runs, their history and the outbox in PostgreSQL. A store is ONE statement (so one
transaction): the conditional update or insert of the run, its history row and its outbox row. The NOTIFY that
wakes the outbox relay goes after the commit, outside it (see `_wake`: inside, it serialises every commit).

Concurrent updates and lookups are batched (see `_batch`): one statement updates many runs, each row under its
own version predicate, and reports which rows matched; only the callers whose row did not match get
VersionConflict, the others are stored. Concurrent inserts of new runs are batched too: all in one statement, or,
if it is refused, each alone, so each caller gets its own run's outcome. Each record is still stored with its
outbox event in one transaction (the batch's), and never without its own version check."""

from __future__ import annotations

import asyncio
import builtins
import functools
import hashlib
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from conveyor._core.clock import Clock, SystemClock
from conveyor._core.ports import OutboxSignal, RecordFilter, SortOrder, StatusCount
from conveyor._core.records import Meta, OutboxEvent, Record, compact_json, outbox_data
from conveyor._core.runstate import RunState
from conveyor.adapters.postgres._batch import Batcher
from conveyor.adapters.postgres._connect import acquire_pool, connect, release_pool
from conveyor.adapters.postgres._wake import Waker
from conveyor.errors import InvalidInput, RecordNotFound, VersionConflict, WorkflowInProgress

_COLUMNS = (
    "workflow_name, foreign_id, run_id, run_state, status, object, created_at, updated_at, "
    "run_state_reason, status_description, version, trace_origin, forked_from, forked_from_status"
)
_STATES = list(RunState)

_INSERT = f"""
WITH run AS (
    INSERT INTO conveyor_runs ({_COLUMNS})
    VALUES (%(workflow_name)s, %(foreign_id)s, %(run_id)s, %(run_state)s, %(status)s, %(object)s, %(created_at)s,
            %(updated_at)s, %(run_state_reason)s, %(status_description)s, %(version)s, %(trace_origin)s,
            %(forked_from)s, %(forked_from_status)s)
    RETURNING {_COLUMNS}
), history AS (
    INSERT INTO conveyor_run_history ({_COLUMNS}) SELECT {_COLUMNS} FROM run
), outbox AS (
    INSERT INTO conveyor_outbox (workflow_name, data, created_at) SELECT workflow_name, %(data)s, %(now)s FROM run
)
SELECT count(*) FROM run
"""

_UPDATE = f"""
WITH run AS (
    UPDATE conveyor_runs SET
        run_state = %(run_state)s, status = %(status)s, object = %(object)s, updated_at = %(updated_at)s,
        run_state_reason = %(run_state_reason)s, status_description = %(status_description)s,
        version = %(version)s, trace_origin = %(trace_origin)s
    WHERE run_id = %(run_id)s AND version = %(expected)s
    RETURNING {_COLUMNS}
), history AS (
    INSERT INTO conveyor_run_history ({_COLUMNS}) SELECT {_COLUMNS} FROM run
), outbox AS (
    INSERT INTO conveyor_outbox (workflow_name, data, created_at) SELECT workflow_name, %(data)s, %(now)s FROM run
)
SELECT count(*) FROM run
"""

# A batch goes as ONE json parameter (bytea as hex, timestamps as ISO 8601): encoding it is one C call, where
# arrays of each column were dumped value by value in Python (the biggest CPU cost per transition).
_UPDATE_MANY = f"""
WITH input AS (
    SELECT * FROM json_to_recordset(%(rows)s::json) AS i(
        idx int, run_id text, expected bigint, run_state smallint, status int, object text, updated_at timestamptz,
        run_state_reason text, status_description text, version bigint, trace_origin text, data text
    )
), run AS (
    UPDATE conveyor_runs AS r SET
        run_state = i.run_state, status = i.status, object = decode(i.object, 'hex'), updated_at = i.updated_at,
        run_state_reason = i.run_state_reason, status_description = i.status_description,
        version = i.version, trace_origin = i.trace_origin
    FROM input AS i
    WHERE r.run_id = i.run_id AND r.version = i.expected
    RETURNING i.idx, i.data, {", ".join("r." + c for c in _COLUMNS.split(", "))}
), history AS (
    INSERT INTO conveyor_run_history ({_COLUMNS}) SELECT {_COLUMNS} FROM run
), outbox AS (
    INSERT INTO conveyor_outbox (workflow_name, data, created_at)
    SELECT workflow_name, decode(data, 'hex'), %(now)s FROM run ORDER BY idx
)
SELECT array(SELECT idx FROM run)
"""

_INSERT_MANY = f"""
WITH input AS (
    SELECT idx, workflow_name, foreign_id, run_id, run_state, status, decode(object, 'hex') AS object, created_at,
           updated_at, run_state_reason, status_description, version, trace_origin, forked_from,
           forked_from_status, data
    FROM json_to_recordset(%(rows)s::json) AS i(
        idx int, workflow_name text, foreign_id text, run_id text, run_state smallint, status int, object text,
        created_at timestamptz, updated_at timestamptz, run_state_reason text, status_description text,
        version bigint, trace_origin text, forked_from text, forked_from_status int, data text
    )
), run AS (
    INSERT INTO conveyor_runs ({_COLUMNS}) SELECT {_COLUMNS} FROM input ORDER BY idx RETURNING {_COLUMNS}
), history AS (
    INSERT INTO conveyor_run_history ({_COLUMNS}) SELECT {_COLUMNS} FROM run
), outbox AS (
    -- Every row of input is inserted or the statement fails as a whole: input stands for run here.
    INSERT INTO conveyor_outbox (workflow_name, data, created_at)
    SELECT workflow_name, decode(data, 'hex'), %(now)s FROM input ORDER BY idx
)
SELECT count(*) FROM run
"""

# Batches in flight at once per store (the pool serves everything else meanwhile) and their size. Fewer lanes make
# bigger batches under load (what arrives while a batch is out goes in the next), so fewer statements per
# transition, each costing the worker a round trip and the server a statement and a commit; a call alone still goes
# at once. bench/deployed.py (one worker per step shard), 3 store and 2 lookup lanes -> 2 and 1: statements per run
# 0.36 -> 0.27 updates and 0.31 -> 0.22 lookups; CPU per transition over every process 497-540 -> 412-508 us and
# deployed transitions/s 3448-3729 -> 3564-4410 (three runs each, interleaved); the single process the same.
_STORE_BATCHES = 2
_LOOKUP_BATCHES = 1
_BATCH_LIMIT = 500
_DEADLOCK_RETRIES = 3


@functools.lru_cache(maxsize=1024)
def channel(workflow_name: str) -> str:
    """A NOTIFY channel per workflow (names are free text; channels are identifiers)."""
    return "conveyor_outbox_" + hashlib.sha1(workflow_name.encode()).hexdigest()[:20]


def _row_to_record(row: Sequence[Any]) -> Record:
    return Record(
        row[0],
        row[1],
        row[2],
        _STATES[row[3]],
        row[4],
        bytes(row[5]) if row[5] is not None else None,
        row[6],
        row[7],
        Meta(row[8], row[9], row[10], row[11], row[12], row[13]),
    )


def _refusal(record: Record, error: psycopg.Error) -> BaseException:
    """What a refused insert or update of `record` means to its caller."""
    if isinstance(error, psycopg.errors.UniqueViolation):
        if error.diag.constraint_name == "conveyor_runs_one_unfinished":
            return WorkflowInProgress(
                f"workflow {record.workflow_name!r} has a run in progress for {record.foreign_id!r}"
            )
        return VersionConflict(record.run_id, 0, None)
    return error


def _batch_json(rows: builtins.list[dict[str, Any]]) -> str:
    return compact_json(rows).decode()


def _batch_row(record: Record) -> dict[str, Any]:
    """A record's columns for the json of a batch (see _UPDATE_MANY)."""
    meta = record.meta
    return {
        "run_id": record.run_id,
        "run_state": int(record.run_state),
        "status": int(record.status),
        "object": record.object.hex() if record.object is not None else None,
        "updated_at": record.updated_at.isoformat(),
        "run_state_reason": meta.run_state_reason,
        "status_description": meta.status_description,
        "version": meta.version,
        "trace_origin": meta.trace_origin,
        "data": outbox_data(record).hex(),
    }


class PostgresRecordStore:
    """`PostgresRecordStore(dsn)`: opens nothing until `open()`; the schema must exist (`conveyor db migrate`)."""

    def __init__(self, dsn: str, *, clock: Clock | None = None, pool_size: int = 10) -> None:
        if not isinstance(dsn, str) or not dsn.strip():
            raise InvalidInput("dsn", "a PostgreSQL connection string, e.g. postgresql://user@host:5432/db", dsn)
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise InvalidInput("pool_size", "an integer >= 1", pool_size)
        self._dsn = dsn
        self._clock = clock or SystemClock()
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool[Any] | None = None
        self._opens = 0
        self._inserts: Batcher[Record, None] = Batcher(
            self._insert_many, key=lambda record: record.run_id, concurrency=_STORE_BATCHES, limit=_BATCH_LIMIT
        )
        self._updates: Batcher[tuple[Record, int], None] = Batcher(
            self._update_many, key=lambda item: item[0].run_id, concurrency=_STORE_BATCHES, limit=_BATCH_LIMIT
        )
        self._lookups: Batcher[str, Record] = Batcher(
            self._lookup_many, key=lambda run_id: run_id, concurrency=_LOOKUP_BATCHES, limit=_BATCH_LIMIT
        )
        self._waker = Waker(lambda: self.pool)

    async def open(self) -> None:
        if self._opens == 0:
            self._pool = await acquire_pool(self._dsn, self._pool_size)
        self._opens += 1

    async def close(self) -> None:
        if self._opens == 0:
            return
        self._opens -= 1
        if self._opens == 0 and self._pool is not None:
            await self._waker.drain()
            pool, self._pool = self._pool, None
            await release_pool(pool)

    @property
    def pool(self) -> AsyncConnectionPool[Any]:
        if self._pool is None:
            from conveyor.errors import WorkflowNotRunning

            raise WorkflowNotRunning("the Postgres record store is not open")
        return self._pool

    async def _fetch(self, query: str | sql.Composed, params: Any = None) -> list[tuple[Any, ...]]:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(query, params)
            rows: list[tuple[Any, ...]] = await cursor.fetchall()
            return rows

    async def store(self, record: Record, *, expected_version: int | None = None) -> None:
        if expected_version is None:
            await self._inserts.submit(record)
            return
        await self._updates.submit((record, expected_version))

    async def _insert_many(self, records: builtins.list[Record]) -> builtins.list[BaseException | None]:
        """Insert new runs (concurrent triggers) in one statement; if it is refused, insert each alone, so only
        the callers whose run was refused get an error (and the error of their own run)."""
        if len(records) == 1:
            return [await self._insert_one(records[0])]
        rows = [
            {
                "idx": idx,
                "workflow_name": record.workflow_name,
                "foreign_id": record.foreign_id,
                "created_at": record.created_at.isoformat(),
                "forked_from": record.meta.forked_from,
                "forked_from_status": record.meta.forked_from_status,
                **_batch_row(record),
            }
            for idx, record in enumerate(records)
        ]
        params = {"rows": _batch_json(rows), "now": self._clock.now()}
        try:
            await self._fetch(_INSERT_MANY, params)
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError):
            # Nothing of this batch was written.
            return [await self._insert_one(record) for record in records]
        self._waker.wake({channel(record.workflow_name) for record in records})
        return [None] * len(records)

    async def _insert_one(self, record: Record) -> BaseException | None:
        try:
            await self._fetch(_INSERT, self._params(record, None))
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as e:
            return _refusal(record, e)
        self._waker.wake([channel(record.workflow_name)])
        return None

    async def store_all(self, writes: Sequence[tuple[Record, int | None]]) -> None:
        # One transaction on one connection, each write the statement `store` would run alone: a refused write
        # raises, which rolls back the writes before it. Not batched: this is for the rare change of two runs
        # together (a fork), not the hot path.
        async with self.pool.connection() as conn, conn.transaction():
            for record, expected in writes:
                query = _INSERT if expected is None else _UPDATE
                try:
                    cursor = await conn.execute(query, self._params(record, expected))
                    [(stored,)] = await cursor.fetchall()
                except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as e:
                    raise _refusal(record, e) from None
                if stored != 1:
                    cursor = await conn.execute("SELECT version FROM conveyor_runs WHERE run_id = %s", (record.run_id,))
                    row = await cursor.fetchone()
                    raise VersionConflict(record.run_id, expected or 0, row[0] if row else None)
        self._waker.wake({channel(record.workflow_name) for record, _ in writes})

    async def count_active(self, workflow_name: str) -> builtins.list[StatusCount]:
        # The predicate is the unfinished-runs index's own, so this reads that index (which includes the status,
        # run state and update time) and nothing of the finished runs.
        rows = await self._fetch(
            "SELECT status, run_state, count(*), min(updated_at) FROM conveyor_runs "
            "WHERE workflow_name = %s AND run_state IN (1, 2, 3) GROUP BY status, run_state ORDER BY status, run_state",
            (workflow_name,),
        )
        return [StatusCount(row[0], _STATES[row[1]], row[2], row[3]) for row in rows]

    def _params(self, record: Record, expected_version: int | None) -> dict[str, Any]:
        meta = record.meta
        return {
            "workflow_name": record.workflow_name,
            "foreign_id": record.foreign_id,
            "run_id": record.run_id,
            "run_state": int(record.run_state),
            "status": record.status,
            "object": record.object,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
            "run_state_reason": meta.run_state_reason,
            "status_description": meta.status_description,
            "version": meta.version,
            "trace_origin": meta.trace_origin,
            "forked_from": meta.forked_from,
            "forked_from_status": meta.forked_from_status,
            "data": outbox_data(record),
            "now": self._clock.now(),
            "expected": expected_version,
        }

    async def _update_many(self, items: builtins.list[tuple[Record, int]]) -> builtins.list[BaseException | None]:
        """Store each record if its run is at its expected version; a VersionConflict for each one that is not."""
        rows = [
            {"idx": idx, "expected": expected, **_batch_row(record)} for idx, (record, expected) in enumerate(items)
        ]
        params = {"rows": _batch_json(rows), "now": self._clock.now()}
        for attempt in range(_DEADLOCK_RETRIES + 1):
            try:
                [(stored,)] = await self._fetch(_UPDATE_MANY, params)
                break
            except psycopg.errors.DeadlockDetected:
                # Another writer locked some of these rows in another order; nothing was written: go again.
                if attempt == _DEADLOCK_RETRIES:
                    raise
            except (psycopg.errors.IntegrityError, psycopg.errors.DataError):
                # One record was refused and the statement wrote nothing: store each alone, so only its caller
                # gets the error.
                return list(await asyncio.gather(*(self._update_one(r, e) for r, e in items), return_exceptions=True))
        matched = set(stored)
        if matched:
            self._waker.wake({channel(items[i][0].workflow_name) for i in matched})
        missed = [items[i][0].run_id for i in range(len(items)) if i not in matched]
        versions: dict[str, int] = {}
        if missed:
            found = await self._fetch("SELECT run_id, version FROM conveyor_runs WHERE run_id = ANY(%s)", (missed,))
            versions = dict(found)
        return [
            None if i in matched else VersionConflict(record.run_id, expected, versions.get(record.run_id))
            for i, (record, expected) in enumerate(items)
        ]

    async def _update_one(self, record: Record, expected_version: int) -> None:
        [(stored,)] = await self._fetch(_UPDATE, self._params(record, expected_version))
        if stored != 1:
            rows = await self._fetch("SELECT version FROM conveyor_runs WHERE run_id = %s", (record.run_id,))
            raise VersionConflict(record.run_id, expected_version, rows[0][0] if rows else None)
        self._waker.wake([channel(record.workflow_name)])

    async def lookup(self, run_id: str) -> Record:
        return await self._lookups.submit(run_id)

    async def _lookup_many(self, run_ids: builtins.list[str]) -> builtins.list[Record | BaseException]:
        rows = await self._fetch(f"SELECT {_COLUMNS} FROM conveyor_runs WHERE run_id = ANY(%s)", (run_ids,))
        found = {row[2]: row for row in rows}
        return [
            _row_to_record(found[run_id]) if run_id in found else RecordNotFound(f"no run {run_id!r}")
            for run_id in run_ids
        ]

    async def latest(self, workflow_name: str, foreign_id: str) -> Record:
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM conveyor_runs WHERE workflow_name = %s AND foreign_id = %s "
            "ORDER BY seq DESC LIMIT 1",
            (workflow_name, foreign_id),
        )
        if not rows:
            raise RecordNotFound(f"workflow {workflow_name!r} has no run for {foreign_id!r}")
        return _row_to_record(rows[0])

    async def list(
        self,
        workflow_name: str | None = None,
        *,
        offset: int = 0,
        limit: int = 25,
        order: SortOrder = SortOrder.ASCENDING,
        filter: RecordFilter | None = None,
        after: str | None = None,
    ) -> builtins.list[Record]:
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidInput("offset", "an integer >= 0", offset)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInput("limit", "an integer >= 1", limit)
        if after is not None and not isinstance(after, str):
            raise InvalidInput("after", "a run id (a string)", after)
        ascending = order is SortOrder.ASCENDING
        where: builtins.list[sql.Composable] = []
        params: builtins.list[Any] = []
        if workflow_name is not None:
            where.append(sql.SQL("workflow_name = %s"))
            params.append(workflow_name)
        if filter is not None:
            for column, values in (
                ("foreign_id", builtins.list(filter.foreign_ids)),
                ("status", [int(s) for s in filter.statuses]),
                ("run_state", [int(s) for s in filter.run_states]),
            ):
                # A single value as `=`, not `= ANY`: then the planner walks the (workflow, column, seq) index in
                # order and stops at `limit`, instead of sorting every match.
                if len(values) == 1:
                    where.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
                    params.append(values[0])
                elif values:
                    where.append(sql.SQL("{} = ANY(%s)").format(sql.Identifier(column)))
                    params.append(values)
            if filter.created_after is not None:
                where.append(sql.SQL("created_at > %s"))
                params.append(filter.created_after)
            if filter.created_before is not None:
                where.append(sql.SQL("created_at < %s"))
                params.append(filter.created_before)
        if after is not None:
            # Keyset paging: seq is unique and indexed with every filter column, so a deep page starts at once.
            where.append(
                sql.SQL("seq {} (SELECT seq FROM conveyor_runs WHERE run_id = %s)").format(
                    sql.SQL(">" if ascending else "<")
                )
            )
            params.append(after)
        query = sql.SQL("SELECT {} FROM conveyor_runs {} ORDER BY seq {} OFFSET %s LIMIT %s").format(
            sql.SQL(_COLUMNS),
            sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
            sql.SQL("ASC" if ascending else "DESC"),
        )
        rows = await self._fetch(query, [*params, offset, limit])
        # An unknown `after` compares with NULL and matches nothing: tell that apart from a last page.
        if (
            not rows
            and after is not None
            and not await self._fetch("SELECT 1 FROM conveyor_runs WHERE run_id = %s", (after,))
        ):
            raise InvalidInput("after", "the run id of a stored run", after)
        return [_row_to_record(r) for r in rows]

    async def history(self, run_id: str) -> builtins.list[Record]:
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM conveyor_run_history WHERE run_id = %s ORDER BY version", (run_id,)
        )
        return [_row_to_record(r) for r in rows]

    async def list_outbox_events(self, workflow_name: str, limit: int) -> builtins.list[OutboxEvent]:
        rows = await self._fetch(
            "SELECT id, workflow_name, data, created_at FROM conveyor_outbox WHERE workflow_name = %s "
            "ORDER BY id LIMIT %s",
            (workflow_name, limit),
        )
        return [OutboxEvent(str(r[0]), r[1], bytes(r[2]), r[3]) for r in rows]

    async def delete_outbox_events(self, ids: Sequence[str]) -> None:
        numeric = [int(i) for i in ids if isinstance(i, str) and i.isdigit()]
        if numeric:
            await self._fetch("DELETE FROM conveyor_outbox WHERE id = ANY(%s) RETURNING id", (numeric,))

    async def delete_and_list_outbox_events(
        self, ids: Sequence[str], workflow_name: str, limit: int
    ) -> builtins.list[OutboxEvent]:
        """`delete_outbox_events(ids)` then `list_outbox_events(workflow_name, limit)` in one statement: the
        outbox relay deletes a published batch and lists the next in one round trip instead of two. The listing
        reads the snapshot from before the delete, so the deleted ids are left out by name (never by an id range:
        a transaction that commits late can hold a lower id than one already published)."""
        numeric = [int(i) for i in ids if isinstance(i, str) and i.isdigit()]
        rows = await self._fetch(
            "WITH gone AS (DELETE FROM conveyor_outbox WHERE id = ANY(%(ids)s)) "
            "SELECT id, workflow_name, data, created_at FROM conveyor_outbox "
            "WHERE workflow_name = %(name)s AND id <> ALL(%(ids)s) ORDER BY id LIMIT %(limit)s",
            {"ids": numeric, "name": workflow_name, "limit": limit},
        )
        return [OutboxEvent(str(r[0]), r[1], bytes(r[2]), r[3]) for r in rows]

    def outbox_signal(self, workflow_name: str) -> OutboxSignal:
        return _Signal(self._dsn, channel(workflow_name))


class _Signal:
    """LISTEN on a connection of its own (LISTEN is per session, and pooled sessions are shared)."""

    def __init__(self, dsn: str, channel_name: str) -> None:
        self._dsn = dsn
        self._channel = channel_name
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()

    async def _listen(self) -> None:
        self._conn = await connect(self._dsn, autocommit=True)
        await self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        # Anything stored before LISTEN took effect would be missed: report one (harmless) wake-up instead.
        self._arrived.set()
        self._reader = asyncio.ensure_future(self._read(self._conn))

    async def _read(self, conn: psycopg.AsyncConnection[Any]) -> None:
        async for _ in conn.notifies():
            self._arrived.set()

    async def wait(self) -> None:
        if self._conn is None:
            await self._listen()
        elif self._reader is not None and self._reader.done():
            # The listening connection died: listen again (and report a wake-up, as above).
            await self._close_connection()
            await self._listen()
        await self._arrived.wait()
        self._arrived.clear()

    async def _close_connection(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def close(self) -> None:
        await self._close_connection()
