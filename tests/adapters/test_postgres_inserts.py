"""Batches of the Postgres record store: concurrent new runs go in one statement; when the database refuses one
of them, only its caller gets the error (its own), and every other run is stored with its history row and outbox
event. Batched values (sent as json) come back exactly as stored."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import datetime, timedelta, timezone

import psycopg

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


async def test_batched_values_round_trip_exactly(pg_dsn: str) -> None:
    """A batch travels as json (bytea as hex, timestamps as ISO 8601): every value comes back as it was stored."""
    store = PostgresRecordStore(pg_dsn)
    await store.open()
    try:
        name = f"values-{uuid.uuid4().hex[:8]}"
        odd = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=timezone(timedelta(hours=-7, minutes=-30)))
        records = [
            dataclasses.replace(
                new_record(name, f'é-{i} "quoted" \\ ✓ 𝄞'),
                object=None if i % 3 == 0 else bytes(range(256)) * (i + 1),
                created_at=odd,
                updated_at=odd,
            )
            for i in range(12)
        ]
        assert await asyncio.gather(*(store.store(r) for r in records)) == [None] * len(records)
        moved = [
            dataclasses.replace(
                r,
                status=r.status + 1,
                updated_at=odd + timedelta(microseconds=1),
                meta=dataclasses.replace(r.meta, version=2, run_state_reason="ünïcode\n\ttabs", trace_origin="x'y"),
            )
            for r in records
        ]
        assert await asyncio.gather(*(store.store(m, expected_version=1) for m in moved)) == [None] * len(moved)
        for record, after in zip(records, moved, strict=True):
            assert await store.history(record.run_id) == [record, after]
            assert (await store.lookup(record.run_id)).updated_at == odd + timedelta(microseconds=1)
    finally:
        await store.close()


async def test_a_value_the_database_refuses_fails_only_its_own_caller(pg_dsn: str) -> None:
    store = PostgresRecordStore(pg_dsn)
    await store.open()
    try:
        name = f"values-{uuid.uuid4().hex[:8]}"
        records = [new_record(name, f"f{i}") for i in range(20)]
        for r in records:
            await store.store(r)
        # PostgreSQL text cannot hold NUL: that record is refused, the rest of its batch is stored.
        moved = [
            dataclasses.replace(
                r,
                meta=dataclasses.replace(r.meta, version=2, run_state_reason="nul\x00" if i == 7 else "ok"),
            )
            for i, r in enumerate(records)
        ]
        outcomes = await asyncio.gather(*(store.store(m, expected_version=1) for m in moved), return_exceptions=True)
        assert isinstance(outcomes[7], psycopg.errors.DataError), outcomes[7]
        assert [o for i, o in enumerate(outcomes) if i != 7] == [None] * (len(records) - 1)
        assert (await store.lookup(records[7].run_id)).meta.version == 1
        for i, m in enumerate(moved):
            if i != 7:
                assert (await store.lookup(m.run_id)).meta.run_state_reason == "ok"
    finally:
        await store.close()
