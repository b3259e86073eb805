"""The Postgres store's one-round-trip step of the outbox relay: delete the published batch, list the next.
What it lists is exactly what a delete followed by a list would give, though both run in one statement (whose
listing reads the snapshot from before its own delete)."""

from __future__ import annotations

import uuid

from conveyor.adapters.postgres import PostgresRecordStore
from conveyor.testing.conformance._support import new_record


async def test_delete_and_list_deletes_the_batch_and_lists_the_rest_in_order(pg_dsn: str) -> None:
    store = PostgresRecordStore(pg_dsn)
    await store.open()
    try:
        name, other = f"outbox-{uuid.uuid4().hex[:8]}", f"outbox-{uuid.uuid4().hex[:8]}"
        for i in range(6):
            await store.store(new_record(name, f"f{i}"))
        await store.store(new_record(other, "theirs"))
        first = await store.list_outbox_events(name, 3)
        # Not a prefix: the first and third of the batch go, the second stays (a relay deletes what it published).
        gone = [first[0].id, first[2].id]
        listed = await store.delete_and_list_outbox_events(gone, name, 100)
        assert [e.decode().foreign_id for e in listed] == ["f1", "f3", "f4", "f5"]
        assert [e.id for e in listed] == [e.id for e in await store.list_outbox_events(name, 100)]
        assert [e.id for e in await store.delete_and_list_outbox_events([], name, 2)] == [e.id for e in listed[:2]]
        # Ids that are not the store's (or not there any more) are ignored, as delete_outbox_events ignores them.
        listed = await store.delete_and_list_outbox_events([listed[0].id, "no-such-id", gone[0]], name, 100)
        assert [e.decode().foreign_id for e in listed] == ["f3", "f4", "f5"]
        assert await store.delete_and_list_outbox_events([e.id for e in listed], name, 100) == []
        assert await store.list_outbox_events(name, 100) == []
        assert [e.decode().foreign_id for e in await store.list_outbox_events(other, 100)] == ["theirs"]
    finally:
        await store.close()
