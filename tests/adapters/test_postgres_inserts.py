"""Concurrent new runs on the Postgres record store go in one statement; when the database refuses one of them,
only its caller gets the error (its own), and every other run is stored with its history row and outbox event."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

from conveyor.adapters.postgres import PostgresRecordStore
from conveyor.errors import VersionConflict, WorkflowInProgress
from conveyor.testing.conformance._support import new_record


async def test_concurrent_new_runs_are_stored_each_with_its_history_and_event(pg_dsn: str) -> None:
    store = PostgresRecordStore(pg_dsn)
    await store.open()
    try:
        name = f"inserts-{uuid.uuid4().hex[:8]}"
        records = [new_record(name, f"f{i}") for i in range(50)]
        outcomes = await asyncio.gather(*(store.store(r) for r in records), return_exceptions=True)
        assert outcomes == [None] * len(records)
        for record in records:
            assert await store.lookup(record.run_id) == record
            assert await store.history(record.run_id) == [record]
        events = await store.list_outbox_events(name, 1000)
        assert sorted(e.decode().foreign_id for e in events) == sorted(r.foreign_id for r in records)
    finally:
        await store.close()


async def test_a_refused_new_run_fails_only_its_own_caller(pg_dsn: str) -> None:
    store = PostgresRecordStore(pg_dsn)
    await store.open()
    try:
        name = f"inserts-{uuid.uuid4().hex[:8]}"
        existing = new_record(name, "busy")
        await store.store(existing)
        records = [new_record(name, f"f{i}") for i in range(30)]
        in_progress = new_record(name, "busy")  # "busy" already has an unfinished run
        same_id = dataclasses.replace(new_record(name, "other"), run_id=existing.run_id)
        outcomes = await asyncio.gather(
            *(store.store(r) for r in records[:15]),
            store.store(in_progress),
            store.store(same_id),
            *(store.store(r) for r in records[15:]),
            return_exceptions=True,
        )
        assert isinstance(outcomes[15], WorkflowInProgress), outcomes[15]
        assert "busy" in str(outcomes[15])
        assert isinstance(outcomes[16], VersionConflict), outcomes[16]
        assert [o for i, o in enumerate(outcomes) if i not in (15, 16)] == [None] * len(records)
        for record in records:
            assert await store.history(record.run_id) == [record]
        assert await store.history(existing.run_id) == [existing]  # the refused runs changed nothing
        assert (await store.latest(name, "busy")).run_id == existing.run_id
        events = await store.list_outbox_events(name, 1000)
        assert sorted(e.decode().foreign_id for e in events) == sorted(["busy", *(r.foreign_id for r in records)])
    finally:
        await store.close()
