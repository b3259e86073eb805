"""TimeoutStoreSuite: the reference's timeout-store tests (complete, cancel, list) plus ours: list_valid's
filters, idempotent scheduling, and errors for unknown ids."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conveyor._core.ports import TimeoutStore
from conveyor.errors import TimeoutNotFound
from conveyor.testing.conformance._support import STARTED, now, same_time, unique


async def seed(store: TimeoutStore, workflow: str, count: int) -> None:
    for i in range(count):
        await store.create(workflow, "andrew", str(i + 1), STARTED, now() - timedelta(hours=1))


class TimeoutStoreSuite:
    """Subclass and provide a `timeout_store` fixture (opened)."""

    async def test_complete_and_cancel(self, timeout_store: TimeoutStore) -> None:
        name = unique("timeouts")
        await seed(timeout_store, name, 3)
        ids = [t.id for t in await timeout_store.list(name)]
        await timeout_store.complete(ids[1])
        await timeout_store.cancel(ids[2])
        valid = await timeout_store.list_valid(name, STARTED, now())
        assert [t.run_id for t in valid] == ["1"]
        listed = await timeout_store.list(name)
        assert [(t.run_id, t.completed) for t in listed] == [("1", False), ("2", True)]

    async def test_list_keeps_every_field(self, timeout_store: TimeoutStore) -> None:
        name = unique("list")
        expire = now() - timedelta(hours=1)
        created = await timeout_store.create(name, "andrew", "run-1", STARTED, expire, timer=2, record_version=5)
        [listed] = await timeout_store.list(name)
        assert listed.id == created.id
        assert (listed.workflow_name, listed.foreign_id, listed.run_id, listed.status) == (
            name,
            "andrew",
            "run-1",
            STARTED,
        )
        assert (listed.timer, listed.record_version, listed.completed) == (2, 5, False)
        assert same_time(listed.expire_at, expire)
        assert abs(listed.created_at - now()) < timedelta(seconds=10)

    async def test_list_valid_filters(self, timeout_store: TimeoutStore) -> None:
        name, at = unique("valid"), now()
        await timeout_store.create(name, "f", "due", STARTED, at - timedelta(seconds=1))
        await timeout_store.create(name, "f", "exactly-now", STARTED, at)
        await timeout_store.create(name, "f", "later", STARTED, at + timedelta(minutes=5))
        await timeout_store.create(name, "f", "other-status", STARTED + 1, at - timedelta(seconds=1))
        await timeout_store.create(unique("other"), "f", "other-workflow", STARTED, at - timedelta(seconds=1))
        assert [t.run_id for t in await timeout_store.list_valid(name, STARTED, at)] == ["due", "exactly-now"]
        later = await timeout_store.list_valid(name, STARTED, at + timedelta(minutes=10))
        assert [t.run_id for t in later] == ["due", "exactly-now", "later"]

    async def test_create_is_idempotent(self, timeout_store: TimeoutStore) -> None:
        name = unique("idempotent")
        first = await timeout_store.create(name, "f", "run", STARTED, now(), timer=0, record_version=3)
        again = await timeout_store.create(name, "f", "run", STARTED, now() + timedelta(hours=1), record_version=3)
        assert again.id == first.id
        other_timer = await timeout_store.create(name, "f", "run", STARTED, now(), timer=1, record_version=3)
        other_version = await timeout_store.create(name, "f", "run", STARTED, now(), timer=0, record_version=4)
        assert len({first.id, other_timer.id, other_version.id}) == 3
        assert len(await timeout_store.list(name)) == 3

    async def test_unknown_ids(self, timeout_store: TimeoutStore) -> None:
        with pytest.raises(TimeoutNotFound):
            await timeout_store.complete(987_654_321)
        with pytest.raises(TimeoutNotFound):
            await timeout_store.cancel(987_654_321)
