"""RecordStoreSuite: the reference's record-store tests (Latest, Lookup, Store, outbox, List and its filters) plus
ours: optimistic concurrency, one unfinished run per foreign id, outbox atomicity, history, outbox signals."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest

from conveyor._core.ports import RecordFilter, RecordStore, SortOrder
from conveyor._core.records import Record, event_topic, outbox_data
from conveyor._core.runstate import RunState
from conveyor.errors import InvalidInput, RecordNotFound, VersionConflict, WorkflowInProgress
from conveyor.testing.conformance._support import (
    END,
    MIDDLE,
    STARTED,
    assert_same_record,
    new_record,
    now,
    same_time,
    unique,
)


def advance(record: Record, **changes: object) -> Record:
    """The next version of a record, as the engine would write it."""
    after = dataclasses.replace(record, **changes)  # type: ignore[arg-type]
    after.meta = dataclasses.replace(record.meta, version=record.meta.version + 1)
    return after


class RecordStoreSuite:
    """Subclass as `class TestMyStore(RecordStoreSuite)` and provide a `record_store` fixture (opened)."""

    async def test_store_then_lookup_and_latest(self, record_store: RecordStore) -> None:
        record = new_record(unique("lookup"))
        await record_store.store(record)
        assert_same_record(record, await record_store.lookup(record.run_id))
        assert_same_record(record, await record_store.latest(record.workflow_name, record.foreign_id))

    async def test_latest_follows_updates_and_the_newest_run(self, record_store: RecordStore) -> None:
        name = unique("latest")
        first = new_record(name)
        await record_store.store(first)
        done = advance(first, status=END, run_state=RunState.COMPLETED)
        await record_store.store(done, expected_version=1)
        assert_same_record(done, await record_store.latest(name, first.foreign_id))
        second = new_record(name)
        await record_store.store(second)
        assert (await record_store.latest(name, first.foreign_id)).run_id == second.run_id
        assert (await record_store.lookup(first.run_id)).run_state is RunState.COMPLETED

    async def test_not_found(self, record_store: RecordStore) -> None:
        with pytest.raises(RecordNotFound):
            await record_store.lookup(unique("missing-run"))
        with pytest.raises(RecordNotFound):
            await record_store.latest(unique("missing-workflow"), "nobody")

    async def test_updates_keep_every_field(self, record_store: RecordStore) -> None:
        record = new_record(unique("update"))
        await record_store.store(record)
        middle = advance(record, status=MIDDLE, run_state=RunState.RUNNING, object=b'{"x":1}', updated_at=now())
        await record_store.store(middle, expected_version=1)
        assert_same_record(middle, await record_store.lookup(record.run_id))
        deleted = advance(middle, object=None, run_state=RunState.COMPLETED)
        await record_store.store(deleted, expected_version=2)
        assert (await record_store.lookup(record.run_id)).object is None

    async def test_a_stale_version_is_refused_and_writes_nothing(self, record_store: RecordStore) -> None:
        name = unique("conflict")
        record = new_record(name)
        await record_store.store(record)
        await record_store.store(advance(record, status=MIDDLE), expected_version=1)
        before_outbox = await record_store.list_outbox_events(name, 100)
        stale = advance(record, status=END)
        with pytest.raises(VersionConflict):
            await record_store.store(stale, expected_version=1)
        with pytest.raises(VersionConflict):
            await record_store.store(advance(record, status=END), expected_version=7)
        assert (await record_store.lookup(record.run_id)).status == MIDDLE
        assert [r.meta.version for r in await record_store.history(record.run_id)] == [1, 2]
        assert [e.id for e in await record_store.list_outbox_events(name, 100)] == [e.id for e in before_outbox]

    async def test_an_update_of_an_unknown_run_is_refused(self, record_store: RecordStore) -> None:
        record = new_record(unique("unknown"))
        with pytest.raises(VersionConflict):
            await record_store.store(record, expected_version=1)
        with pytest.raises(RecordNotFound):
            await record_store.lookup(record.run_id)

    async def test_creating_an_existing_run_is_refused(self, record_store: RecordStore) -> None:
        record = new_record(unique("twice"))
        await record_store.store(record)
        finished = advance(record, run_state=RunState.COMPLETED)
        await record_store.store(finished, expected_version=1)
        with pytest.raises(VersionConflict):
            await record_store.store(record)

    async def test_a_duplicate_run_id_is_refused_and_writes_nothing(self, record_store: RecordStore) -> None:
        # What an idempotent trigger (a run id given by the caller) relies on: the same run id, in progress, for
        # the same foreign id, for another foreign id, or in another workflow, is refused (with VersionConflict,
        # or WorkflowInProgress where the one-unfinished-run rule is checked first) and nothing is written.
        name = unique("duplicate")
        record = new_record(name, "fid")
        await record_store.store(record)
        for duplicate in (
            dataclasses.replace(record, object=b'{"again":true}'),
            dataclasses.replace(record, foreign_id="another-fid"),
            dataclasses.replace(record, workflow_name=unique("elsewhere")),
        ):
            with pytest.raises((VersionConflict, WorkflowInProgress)):
                await record_store.store(duplicate)
        assert_same_record(record, await record_store.lookup(record.run_id))
        assert [r.meta.version for r in await record_store.history(record.run_id)] == [1]
        assert len(await record_store.list_outbox_events(name, 100)) == 1
        assert [r.run_id for r in await record_store.list(name, limit=100)] == [record.run_id]
        with pytest.raises(RecordNotFound):
            await record_store.latest(name, "another-fid")

    async def test_one_unfinished_run_per_foreign_id(self, record_store: RecordStore) -> None:
        name = unique("in-progress")
        first = new_record(name, "fid")
        await record_store.store(first)
        for state in (RunState.INITIATED, RunState.RUNNING, RunState.PAUSED):
            current = await record_store.lookup(first.run_id)
            if current.run_state is not state:
                await record_store.store(advance(current, run_state=state), expected_version=current.meta.version)
            with pytest.raises(WorkflowInProgress):
                await record_store.store(new_record(name, "fid"))
        # Another foreign id, and the same foreign id in another workflow, are independent.
        await record_store.store(new_record(name, "other-fid"))
        await record_store.store(new_record(unique("elsewhere"), "fid"))
        current = await record_store.lookup(first.run_id)
        await record_store.store(advance(current, run_state=RunState.CANCELLED), expected_version=current.meta.version)
        second = new_record(name, "fid")
        await record_store.store(second)
        assert (await record_store.latest(name, "fid")).run_id == second.run_id

    async def test_store_all_writes_all_or_nothing(self, record_store: RecordStore) -> None:
        name = unique("store-all")
        paused = new_record(name, "fid", run_state=RunState.PAUSED)
        await record_store.store(paused)
        cancelled = advance(paused, run_state=RunState.CANCELLED)
        fork = dataclasses.replace(new_record(name, "fid"))
        fork.meta = dataclasses.replace(fork.meta, forked_from=paused.run_id, forked_from_status=paused.status)
        # The new run alone is refused beside the paused one; stopping the paused one first in the same
        # transaction lets it in.
        with pytest.raises(WorkflowInProgress):
            await record_store.store_all([(fork, None)])
        await record_store.store_all([(cancelled, 1), (fork, None)])
        assert_same_record(cancelled, await record_store.lookup(paused.run_id))
        assert_same_record(fork, await record_store.lookup(fork.run_id))
        assert (await record_store.history(fork.run_id))[0].meta.forked_from == paused.run_id
        assert (await record_store.latest(name, "fid")).run_id == fork.run_id
        assert len(await record_store.list_outbox_events(name, 100)) == 3

        # A refused write (a stale version) leaves the writes before and after it unwritten.
        other = new_record(name, "other-fid", run_state=RunState.PAUSED)
        await record_store.store(other)
        late = new_record(name, "late-fid")
        with pytest.raises(VersionConflict):
            await record_store.store_all([(late, None), (advance(other, run_state=RunState.CANCELLED), 7)])
        with pytest.raises(RecordNotFound):
            await record_store.lookup(late.run_id)
        assert (await record_store.lookup(other.run_id)).run_state is RunState.PAUSED
        assert [r.meta.version for r in await record_store.history(other.run_id)] == [1]
        assert len(await record_store.list_outbox_events(name, 100)) == 4

    async def test_store_all_races_a_store_of_the_same_run(self, record_store: RecordStore) -> None:
        name = unique("store-all-race")
        for i in range(10):
            paused = new_record(name, f"fid-{i}", run_state=RunState.PAUSED)
            await record_store.store(paused)
            fork = new_record(name, f"fid-{i}")
            results = await asyncio.gather(
                record_store.store_all([(advance(paused, run_state=RunState.CANCELLED), 1), (fork, None)]),
                record_store.store(advance(paused, run_state=RunState.RUNNING), expected_version=1),
                return_exceptions=True,
            )
            assert sorted(type(r).__name__ for r in results) == ["NoneType", "VersionConflict"], results
            state = (await record_store.lookup(paused.run_id)).run_state
            forked = results[0] is None
            assert state is (RunState.CANCELLED if forked else RunState.RUNNING)
            if not forked:
                with pytest.raises(RecordNotFound):
                    await record_store.lookup(fork.run_id)

    async def test_count_active_counts_unfinished_runs_per_status_and_state(self, record_store: RecordStore) -> None:
        name = unique("count-active")
        assert await record_store.count_active(name) == []
        earliest = now() - timedelta(hours=2)
        stored = [
            new_record(name, "a", status=STARTED, run_state=RunState.RUNNING, created_at=earliest),
            new_record(name, "b", status=STARTED, run_state=RunState.RUNNING),
            new_record(name, "c", status=STARTED, run_state=RunState.PAUSED),
            new_record(name, "d", status=MIDDLE, run_state=RunState.INITIATED),
            new_record(name, "e", status=MIDDLE, run_state=RunState.COMPLETED),
            new_record(name, "f", status=END, run_state=RunState.CANCELLED),
            new_record(unique("elsewhere"), "g", status=STARTED, run_state=RunState.RUNNING),
        ]
        for record in stored:
            await record_store.store(record)
        counts = await record_store.count_active(name)
        assert [(c.status, c.run_state, c.count) for c in counts] == [
            (STARTED, RunState.RUNNING, 2),
            (STARTED, RunState.PAUSED, 1),
            (MIDDLE, RunState.INITIATED, 1),
        ]
        assert same_time(counts[0].oldest, earliest)
        # A run that finishes leaves the count.
        done = advance(stored[3], status=END, run_state=RunState.COMPLETED)
        await record_store.store(done, expected_version=1)
        assert [(c.status, c.count) for c in await record_store.count_active(name)] == [(STARTED, 2), (STARTED, 1)]

    async def test_concurrent_writers_one_wins(self, record_store: RecordStore) -> None:
        record = new_record(unique("race"))
        await record_store.store(record)

        async def attempt(i: int) -> bool:
            try:
                await record_store.store(advance(record, status=MIDDLE, object=str(i).encode()), expected_version=1)
            except VersionConflict:
                return False
            return True

        results = await asyncio.gather(*(attempt(i) for i in range(20)))
        assert results.count(True) == 1
        assert [r.meta.version for r in await record_store.history(record.run_id)] == [1, 2]
        assert len(await record_store.list_outbox_events(record.workflow_name, 100)) == 2

    async def test_concurrent_creations_one_wins(self, record_store: RecordStore) -> None:
        name = unique("create-race")

        async def attempt() -> bool:
            try:
                await record_store.store(new_record(name, "same"))
            except WorkflowInProgress:
                return False
            return True

        results = await asyncio.gather(*(attempt() for _ in range(20)))
        assert results.count(True) == 1
        assert len(await record_store.list(name, limit=100)) == 1

    async def test_each_store_writes_exactly_one_outbox_event(self, record_store: RecordStore) -> None:
        name = unique("outbox")
        record = new_record(name)
        written = [record]
        await record_store.store(record)
        for state, status in (
            (RunState.RUNNING, MIDDLE),
            (RunState.PAUSED, MIDDLE),
            (RunState.RUNNING, MIDDLE),
            (RunState.COMPLETED, END),
            (RunState.REQUESTED_DATA_DELETED, END),
            (RunState.DATA_DELETED, END),
        ):
            nxt = advance(written[-1], run_state=state, status=status)
            await record_store.store(nxt, expected_version=written[-1].meta.version)
            written.append(nxt)
        events = await record_store.list_outbox_events(name, 100)
        assert len(events) == len(written)
        assert all(e.workflow_name == name and e.id for e in events)
        assert len({e.id for e in events}) == len(events)
        for event, record in zip(events, written, strict=True):
            assert event.data == outbox_data(record)
            decoded = event.decode()
            assert decoded.headers["topic"] == event_topic(record)
            assert decoded.headers["record_version"] == str(record.meta.version)
            assert decoded.headers["run_id"] == record.run_id
            assert decoded.headers["foreign_id"] == record.foreign_id
            assert decoded.headers["workflow_name"] == name
            assert decoded.headers["run_state"] == str(int(record.run_state))
            assert decoded.type == record.status
        topics = [e.decode().headers["topic"] for e in events]
        assert topics == [
            f"{name}-1",
            f"{name}-2",
            f"{name}-run-state-change",
            f"{name}-2",
            f"{name}-run-state-change",
            f"{name}-delete",
            f"{name}-run-state-change",
        ]

    async def test_outbox_order_limit_and_delete(self, record_store: RecordStore) -> None:
        name = unique("outbox-delete")
        records = [new_record(name, f"fid-{i}") for i in range(5)]
        for record in records:
            await record_store.store(record)
        assert await record_store.list_outbox_events(unique("nothing"), 10) == []
        first_three = await record_store.list_outbox_events(name, 3)
        assert [e.decode().foreign_id for e in first_three] == ["fid-0", "fid-1", "fid-2"]
        await record_store.delete_outbox_events([first_three[0].id, first_three[2].id, "no-such-id"])
        remaining = await record_store.list_outbox_events(name, 100)
        assert [e.decode().foreign_id for e in remaining] == ["fid-1", "fid-3", "fid-4"]
        await record_store.delete_outbox_events([e.id for e in remaining])
        assert await record_store.list_outbox_events(name, 100) == []

    async def test_outbox_signal_wakes_after_a_store(self, record_store: RecordStore) -> None:
        name = unique("signal")
        signal = record_store.outbox_signal(name)
        try:
            waiting = asyncio.ensure_future(signal.wait())
            await asyncio.sleep(0.05)
            await record_store.store(new_record(name))
            await asyncio.wait_for(waiting, 10)
            # A store while nobody waits is not missed by the next wait.
            await record_store.store(new_record(name, "other"))
            await asyncio.wait_for(signal.wait(), 10)
        finally:
            await signal.close()

    async def test_history_keeps_every_version(self, record_store: RecordStore) -> None:
        record = new_record(unique("history"))
        await record_store.store(record)
        middle = advance(record, status=MIDDLE, run_state=RunState.RUNNING)
        await record_store.store(middle, expected_version=1)
        end = advance(middle, status=END, run_state=RunState.COMPLETED)
        await record_store.store(end, expected_version=2)
        history = await record_store.history(record.run_id)
        assert [(h.status, h.run_state, h.meta.version) for h in history] == [
            (STARTED, RunState.INITIATED, 1),
            (MIDDLE, RunState.RUNNING, 2),
            (END, RunState.COMPLETED, 3),
        ]
        assert await record_store.history(unique("no-run")) == []

    async def test_list_pages_cover_everything_once_in_order(self, record_store: RecordStore) -> None:
        name = unique("paging")
        base = now()
        stored = []
        for i in range(120):
            record = new_record(name, f"fid-{i:03d}", created_at=base + timedelta(milliseconds=i))
            await record_store.store(record)
            stored.append(record.run_id)
        for order, expected in ((SortOrder.ASCENDING, stored), (SortOrder.DESCENDING, stored[::-1])):
            seen: list[str] = []
            for offset in range(0, 125, 25):
                page = await record_store.list(name, offset=offset, limit=25, order=order)
                assert len(page) == (25 if offset < 100 else 20 if offset == 100 else 0)
                seen.extend(r.run_id for r in page)
            assert seen == expected
        assert len(await record_store.list(name, offset=53, limit=100)) == 67
        assert (await record_store.list(name, offset=119, limit=5))[0].run_id == stored[-1]

    async def test_list_after_a_run_pages_by_keyset(self, record_store: RecordStore) -> None:
        name, other = unique("keyset"), unique("keyset-other")
        stored = []
        for i in range(30):
            record = new_record(name, f"fid-{i:02d}", run_state=RunState.PAUSED if i % 3 == 0 else RunState.RUNNING)
            await record_store.store(record)
            stored.append(record)
            # Another workflow's runs interleave: `after` is a position in the whole store, not in one workflow.
            await record_store.store(new_record(other, f"fid-{i:02d}"))
        ids = [r.run_id for r in stored]
        for order, expected in ((SortOrder.ASCENDING, ids), (SortOrder.DESCENDING, ids[::-1])):
            seen: list[str] = []
            after: str | None = None
            while True:
                page = await record_store.list(name, limit=7, order=order, after=after)
                if not page:
                    break
                seen.extend(r.run_id for r in page)
                after = page[-1].run_id
            assert seen == expected
        paused = RecordFilter(run_states=[RunState.PAUSED])
        page = await record_store.list(name, limit=3, order=SortOrder.DESCENDING, filter=paused, after=ids[25])
        assert [r.foreign_id for r in page] == ["fid-24", "fid-21", "fid-18"]
        # The cursor need not match the filter itself, and offset still skips after it.
        page = await record_store.list(name, offset=1, limit=2, filter=paused, after=ids[1])
        assert [r.foreign_id for r in page] == ["fid-06", "fid-09"]
        assert await record_store.list(name, after=ids[-1]) == []

    async def test_list_after_an_unknown_run_is_refused(self, record_store: RecordStore) -> None:
        name = unique("keyset-bad")
        await record_store.store(new_record(name))
        with pytest.raises(InvalidInput) as info:
            await record_store.list(name, after=unique("no-such-run"))
        assert info.value.field == "after"

    async def test_list_only_the_workflow_asked_for(self, record_store: RecordStore) -> None:
        first, second = unique("list-a"), unique("list-b")
        for _ in range(10):
            await record_store.store(new_record(first, unique("fid")))
            await record_store.store(new_record(second, unique("fid")))
        listed = await record_store.list(first, limit=1000)
        assert len(listed) == 10 and {r.workflow_name for r in listed} == {first}
        everything = await record_store.list(None, limit=1000, order=SortOrder.DESCENDING)
        assert {r.workflow_name for r in everything} >= {first, second}

    async def test_list_filters(self, record_store: RecordStore) -> None:
        name = unique("filters")
        base = now()
        layout = {
            RunState.INITIATED: (STARTED, 4),
            RunState.RUNNING: (MIDDLE, 10),
            RunState.COMPLETED: (END, 5),
            RunState.PAUSED: (MIDDLE, 3),
            RunState.CANCELLED: (MIDDLE, 1),
            RunState.DATA_DELETED: (END, 2),
        }
        for state, (status, count) in layout.items():
            for i in range(count):
                record = new_record(
                    name, f"{state.name}-{i}", status=status, run_state=state, created_at=base + timedelta(seconds=i)
                )
                await record_store.store(record)

        async def matching(flt: RecordFilter) -> int:
            found = await record_store.list(name, limit=1000, filter=flt)
            assert all(flt.matches(r) for r in found)
            return len(found)

        for state, (_, expected) in layout.items():
            assert await matching(RecordFilter(run_states=[state])) == expected
        assert await matching(RecordFilter(run_states=[RunState.RUNNING, RunState.PAUSED])) == 13
        assert await matching(RecordFilter(statuses=[MIDDLE])) == 14
        assert await matching(RecordFilter(statuses=[STARTED, END])) == 11
        assert await matching(RecordFilter(foreign_ids=["RUNNING-3"])) == 1
        assert await matching(RecordFilter(foreign_ids=["RUNNING-3", "PAUSED-0", "nobody"])) == 2
        assert await matching(RecordFilter(foreign_ids=["nobody"])) == 0
        assert await matching(RecordFilter(created_after=base - timedelta(minutes=1))) == 25
        assert await matching(RecordFilter(created_after=base + timedelta(seconds=2, milliseconds=500))) == 10
        assert await matching(RecordFilter(created_before=base + timedelta(milliseconds=500))) == 6
        assert await matching(RecordFilter(created_after=base + timedelta(minutes=1))) == 0
        assert (
            await matching(
                RecordFilter(
                    statuses=[MIDDLE],
                    run_states=[RunState.RUNNING],
                    created_after=base + timedelta(seconds=4, milliseconds=500),
                )
            )
            == 5
        )
        page = await record_store.list(
            name, offset=2, limit=3, order=SortOrder.DESCENDING, filter=RecordFilter(run_states=[RunState.RUNNING])
        )
        assert [r.foreign_id for r in page] == ["RUNNING-7", "RUNNING-6", "RUNNING-5"]

    @pytest.mark.parametrize(("offset", "limit", "field"), [(-1, 10, "offset"), (0, 0, "limit"), (0, -5, "limit")])
    async def test_bad_paging_is_refused(self, record_store: RecordStore, offset: int, limit: int, field: str) -> None:
        with pytest.raises(InvalidInput) as info:
            await record_store.list(unique("bad"), offset=offset, limit=limit)
        assert info.value.field == field
