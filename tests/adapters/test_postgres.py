"""The Postgres adapters against the conformance suites on a real PostgreSQL, plus what only they have:
migrations, connection errors, NOTIFY across processes, atomicity when a transaction dies."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable

import psycopg
import pytest
from click.testing import CliRunner

from conveyor import RunState
from conveyor.adapters.memory import MemoryRoleScheduler, MemoryStreamer
from conveyor.adapters.postgres import PostgresRecordStore, PostgresTimeoutStore, _connect, migrate
from conveyor.errors import RecordNotFound, SchemaNotMigrated, ServiceUnavailable, VersionConflict
from conveyor.testing.conformance import Adapters, RecordStoreSuite, TimeoutStoreSuite, WorkflowSuite
from conveyor.testing.conformance._support import new_record
from tests.helpers import empty_database


class TestPostgresRecordStore(RecordStoreSuite):
    @pytest.fixture
    async def record_store(self, pg_dsn: str) -> AsyncIterator[PostgresRecordStore]:
        store = PostgresRecordStore(pg_dsn)
        await store.open()
        yield store
        await store.close()


class TestPostgresTimeoutStore(TimeoutStoreSuite):
    @pytest.fixture
    async def timeout_store(self, pg_dsn: str) -> AsyncIterator[PostgresTimeoutStore]:
        store = PostgresTimeoutStore(pg_dsn)
        await store.open()
        yield store
        await store.close()


class TestWorkflowOnPostgres(WorkflowSuite):
    @pytest.fixture
    def adapters(self, pg_dsn: str) -> Callable[[], Adapters]:
        shared = Adapters(
            MemoryStreamer(), PostgresRecordStore(pg_dsn), MemoryRoleScheduler(), PostgresTimeoutStore(pg_dsn)
        )
        return lambda: shared


async def test_migrations_are_idempotent(pg_dsn: str) -> None:
    assert await migrate(pg_dsn) == []


async def test_a_database_without_the_schema_is_refused(pg_dsn: str) -> None:
    with empty_database(pg_dsn, "conveyor_empty") as empty:
        with pytest.raises(SchemaNotMigrated, match="conveyor db migrate"):
            await PostgresRecordStore(empty).open()
        assert await migrate(empty) == [
            "0001_runs_outbox_timeouts",
            "0002_runs_by_foreign_id",
            "0003_forks_and_active_counts",
        ]
        store = PostgresRecordStore(empty)
        await store.open()
        await store.close()


async def test_an_unreachable_server_is_named_without_its_password() -> None:
    with pytest.raises(ServiceUnavailable) as info:
        await PostgresRecordStore("postgresql://alice:s3cret@127.0.0.1:9/conveyor").open()
    assert "127.0.0.1:9/conveyor" in str(info.value)
    assert "s3cret" not in str(info.value)
    assert info.value.service == "PostgreSQL"


async def test_notify_wakes_another_process_s_relay(pg_dsn: str) -> None:
    writer, reader = PostgresRecordStore(pg_dsn), PostgresRecordStore(pg_dsn)
    await writer.open()
    await reader.open()
    name = f"notify-{uuid.uuid4().hex[:8]}"
    signal = reader.outbox_signal(name)
    try:
        await asyncio.wait_for(signal.wait(), 10)  # the first wait reports the moment LISTEN starts
        waiting = asyncio.ensure_future(signal.wait())
        await asyncio.sleep(0.1)
        assert not waiting.done()
        await writer.store(new_record(name))
        await asyncio.wait_for(waiting, 10)
    finally:
        await signal.close()
        await writer.close()
        await reader.close()


async def test_a_killed_transaction_leaves_nothing(pg_dsn: str) -> None:
    """A writer dying mid-transaction: neither the run nor its outbox row may remain."""
    store = PostgresRecordStore(pg_dsn)
    await store.open()
    name = f"atomic-{uuid.uuid4().hex[:8]}"
    record = new_record(name)
    try:
        async with await psycopg.AsyncConnection.connect(pg_dsn) as victim:
            cursor = await victim.execute("SELECT pg_backend_pid()")
            row = await cursor.fetchone()
            assert row is not None
            await victim.execute(
                "INSERT INTO conveyor_runs (workflow_name, foreign_id, run_id, run_state, status, object, created_at, "
                "updated_at, version) VALUES (%s, %s, %s, 1, 1, NULL, now(), now(), 1)",
                (name, record.foreign_id, record.run_id),
            )
            await victim.execute(
                "INSERT INTO conveyor_outbox (workflow_name, data, created_at) VALUES (%s, '', now())", (name,)
            )
            async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as killer:
                await killer.execute("SELECT pg_terminate_backend(%s)", (row[0],))
            with pytest.raises(psycopg.OperationalError):
                await victim.commit()
        assert await store.list(name) == []
        assert await store.list_outbox_events(name, 10) == []
        await store.store(record)  # and the run id is free to be written properly
        with pytest.raises(VersionConflict):
            await store.store(record)
    finally:
        await store.close()


async def test_idle_connections_the_server_dropped_are_replaced_before_use(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the server dropped a pooled connection (a restart, a failover), the next user gets a working one:
    the pool's idle connections are checked in the background, not discovered broken by a step."""
    monkeypatch.setattr(_connect, "IDLE_CHECK_INTERVAL", 0.2)
    pool = await _connect.acquire_pool(pg_dsn, 3)  # a size of its own: a pool no other test shares
    try:
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
        assert row is not None
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as killer:
            await killer.execute("SELECT pg_terminate_backend(%s)", (row[0],))
        await asyncio.sleep(1.0)
        async with pool.connection() as conn:
            replaced = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
        assert replaced is not None and replaced[0] != row[0]
    finally:
        await _connect.release_pool(pool)


def test_db_migrate_command(pg_dsn: str) -> None:
    from conveyor.cli import cli

    result = CliRunner().invoke(cli, ["db", "migrate", "--dsn", pg_dsn])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    bad = CliRunner().invoke(cli, ["db", "migrate", "--dsn", "postgresql://bob:pw@127.0.0.1:9/x"])
    assert bad.exit_code == 1
    assert "127.0.0.1:9" in bad.output and "pw@" not in bad.output


async def test_concurrent_stores_are_checked_one_by_one(pg_dsn: str) -> None:
    """Concurrent updates go in batches: a stale one gets VersionConflict, the others are stored with their events."""
    store = PostgresRecordStore(pg_dsn)
    await store.open()
    try:
        name = f"batch-{uuid.uuid4().hex[:8]}"
        records = [new_record(name, f"f{i}") for i in range(40)]
        await asyncio.gather(*(store.store(r) for r in records))
        outbox_before = len(await store.list_outbox_events(name, 1000))
        # Every third update expects a version the run is not at.
        stale = {r.run_id for i, r in enumerate(records) if i % 3 == 0}
        updates = [
            store.store(
                dataclasses.replace(
                    r, status=r.status + 1, meta=dataclasses.replace(r.meta, version=r.meta.version + 1)
                ),
                expected_version=r.meta.version + (5 if r.run_id in stale else 0),
            )
            for r in records
        ]
        outcomes = await asyncio.gather(*updates, return_exceptions=True)
        for record, outcome in zip(records, outcomes, strict=True):
            if record.run_id in stale:
                assert isinstance(outcome, VersionConflict), outcome
            else:
                assert outcome is None, outcome
        found = await asyncio.gather(*(store.lookup(r.run_id) for r in records))
        assert [f.status for f in found] == [r.status + (0 if r.run_id in stale else 1) for r in records]
        events = await store.list_outbox_events(name, 1000)
        assert len(events) == outbox_before + len(records) - len(stale)
        with pytest.raises(RecordNotFound):
            await asyncio.gather(store.lookup(records[0].run_id), store.lookup("no-such-run"))
    finally:
        await store.close()


async def test_a_refused_record_in_a_batch_fails_only_its_own_caller(pg_dsn: str) -> None:
    store = PostgresRecordStore(pg_dsn)
    await store.open()
    try:
        name = f"refused-{uuid.uuid4().hex[:8]}"
        finished = new_record(name, "same", run_state=RunState.COMPLETED)
        records = [new_record(name, f"f{i}") for i in range(20)]
        for r in [finished, new_record(name, "same"), *records]:
            await store.store(r)
        # Reopening the finished run would give "same" two unfinished runs: the database refuses that row.
        reopen = dataclasses.replace(
            finished, run_state=RunState.RUNNING, meta=dataclasses.replace(finished.meta, version=2)
        )
        moves = [
            store.store(dataclasses.replace(r, meta=dataclasses.replace(r.meta, version=2)), expected_version=1)
            for r in records
        ]
        outcomes = await asyncio.gather(
            *moves[:10], store.store(reopen, expected_version=1), *moves[10:], return_exceptions=True
        )
        assert isinstance(outcomes[10], psycopg.errors.UniqueViolation)
        assert all(o is None for i, o in enumerate(outcomes) if i != 10), outcomes
        assert all(f.meta.version == 2 for f in await asyncio.gather(*(store.lookup(r.run_id) for r in records)))
    finally:
        await store.close()
