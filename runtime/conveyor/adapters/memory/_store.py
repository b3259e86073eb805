"""MemoryRecordStore: runs, their history and the outbox in process memory, with the same atomicity and
optimistic-concurrency rules as the Postgres store (every store is one step under one lock)."""

from __future__ import annotations

import builtins
import itertools
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from conveyor._core.clock import Clock, SystemClock
from conveyor._core.ports import OutboxSignal, RecordFilter, SortOrder, StatusCount
from conveyor._core.records import Meta, OutboxEvent, Record, outbox_event
from conveyor._core.runstate import RunState
from conveyor.adapters.memory._notify import Notifier
from conveyor.errors import InvalidInput, RecordNotFound, VersionConflict, WorkflowInProgress

# Records are kept as flat tuples of atoms: the garbage collector stops tracking those, so a store holding
# millions of versions does not make every collection slower.
_Packed = tuple[str, str, str, int, int, bytes | None, datetime, datetime, str, str, int, str, str, int]
_STATES = list(RunState)
_ACTIVE = frozenset(int(s) for s in (RunState.INITIATED, RunState.RUNNING, RunState.PAUSED))


def _pack(r: Record) -> _Packed:
    m = r.meta
    return (
        r.workflow_name,
        r.foreign_id,
        r.run_id,
        int(r.run_state),
        r.status,
        r.object,
        r.created_at,
        r.updated_at,
        m.run_state_reason,
        m.status_description,
        m.version,
        m.trace_origin,
        m.forked_from,
        m.forked_from_status,
    )


def _unpack(p: _Packed) -> Record:
    return Record(p[0], p[1], p[2], _STATES[p[3]], p[4], p[5], p[6], p[7], Meta(p[8], p[9], p[10], p[11], p[12], p[13]))


class MemoryRecordStore:
    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._records: dict[str, _Packed] = {}
        self._order: list[str] = []
        self._latest: dict[tuple[str, str], str] = {}
        self._history: dict[str, list[_Packed]] = {}
        self._outbox: dict[str, dict[str, OutboxEvent]] = {}
        self._outbox_ids = itertools.count(1)
        self._signals: dict[str, Notifier] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def store(self, record: Record, *, expected_version: int | None = None) -> None:
        with self._lock:
            current = self._records.get(record.run_id)
            # A step's outcome on the version it read (most stores) needs no more checking than this.
            if expected_version is None or current is None or current[10] != expected_version:
                self._check(record, expected_version)
            signal = self._write(record, expected_version)
        if signal is not None:
            signal.notify()

    async def store_all(self, writes: Sequence[tuple[Record, int | None]]) -> None:
        signals: set[Notifier] = set()
        with self._lock:
            # Each write is checked against the state the writes before it leave, then all are applied: a refusal
            # leaves nothing written. The checks run on a scratch view of what the earlier writes change.
            staged: dict[str, _Packed] = {}
            latest: dict[tuple[str, str], str] = {}
            for record, expected in writes:
                self._check(record, expected, staged, latest)
                staged[record.run_id] = _pack(record)
                if expected is None:
                    latest[(record.workflow_name, record.foreign_id)] = record.run_id
            for record, expected in writes:
                signal = self._write(record, expected)
                if signal is not None:
                    signals.add(signal)
        for signal in signals:
            signal.notify()

    def _check(
        self,
        record: Record,
        expected_version: int | None,
        staged: dict[str, _Packed] | None = None,
        latest: dict[tuple[str, str], str] | None = None,
    ) -> None:
        """Raise what storing `record` would be refused with. Called under the lock; `staged` and `latest` are
        what earlier writes of the same `store_all` change (they win over what is stored)."""
        run_id = record.run_id
        current = staged.get(run_id) if staged else None
        if current is None:
            current = self._records.get(run_id)
        if expected_version is None:
            if current is not None:
                raise VersionConflict(run_id, 0, current[10])
            key = (record.workflow_name, record.foreign_id)
            latest_id = (latest.get(key) if latest else None) or self._latest.get(key)
            if latest_id is not None:
                packed = (staged.get(latest_id) if staged else None) or self._records[latest_id]
                latest_state = _STATES[packed[3]]
                if latest_state.valid() and not latest_state.finished():
                    raise WorkflowInProgress(
                        f"workflow {record.workflow_name!r} has run {latest_id} in progress for {record.foreign_id!r}"
                    )
        elif current is None or current[10] != expected_version:
            raise VersionConflict(run_id, expected_version, None if current is None else current[10])

    def _write(self, record: Record, expected_version: int | None) -> Notifier | None:
        """Apply a checked write (under the lock): the record, its history and its outbox event."""
        kept = _pack(record)
        run_id, workflow_name = record.run_id, record.workflow_name
        if expected_version is None:
            self._order.append(run_id)
            self._latest[(workflow_name, record.foreign_id)] = run_id
            self._history[run_id] = [kept]
        else:
            self._history[run_id].append(kept)
        self._records[run_id] = kept
        event_id = f"outbox-id-{next(self._outbox_ids)}"
        pending = self._outbox.get(workflow_name)
        if pending is None:
            pending = self._outbox[workflow_name] = {}
        # Kept decoded: the payload is encoded only if someone reads OutboxEvent.data.
        pending[event_id] = OutboxEvent(event_id, workflow_name, None, self._clock.now(), event=outbox_event(record))
        return self._signals.get(workflow_name)

    async def lookup(self, run_id: str) -> Record:
        with self._lock:
            found = self._records.get(run_id)
            if found is None:
                raise RecordNotFound(f"no run {run_id!r}")
        return _unpack(found)

    async def latest(self, workflow_name: str, foreign_id: str) -> Record:
        with self._lock:
            run_id = self._latest.get((workflow_name, foreign_id))
            if run_id is None:
                raise RecordNotFound(f"workflow {workflow_name!r} has no run for {foreign_id!r}")
            found = self._records[run_id]
        return _unpack(found)

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
        with self._lock:
            ascending = order is SortOrder.ASCENDING
            if after is None:
                positions = range(len(self._order)) if ascending else range(len(self._order) - 1, -1, -1)
            else:
                if after not in self._records:
                    raise InvalidInput("after", "the run id of a stored run", after)
                # list.index scans in C: fine for an in-memory store, which is not where 100k-run lists live.
                at = self._order.index(after)
                positions = range(at + 1, len(self._order)) if ascending else range(at - 1, -1, -1)
            found: builtins.list[Record] = []
            skipped = 0
            for position in positions:
                run_id = self._order[position]
                packed = self._records[run_id]
                if workflow_name is not None and packed[0] != workflow_name:
                    continue
                record = _unpack(packed)
                if filter is not None and not filter.matches(record):
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                found.append(record)
                if len(found) == limit:
                    break
            return found

    async def count_active(self, workflow_name: str) -> builtins.list[StatusCount]:
        counts: dict[tuple[int, int], list[Any]] = {}
        with self._lock:
            # The in-memory store keeps no index of active runs: one pass over its runs (it is not where 100k
            # active runs live).
            for packed in self._records.values():
                if packed[0] != workflow_name or packed[3] not in _ACTIVE:
                    continue
                found = counts.get((packed[4], packed[3]))
                if found is None:
                    counts[(packed[4], packed[3])] = [1, packed[7]]
                else:
                    found[0] += 1
                    found[1] = min(found[1], packed[7])
        return [
            StatusCount(status, _STATES[state], n, oldest) for (status, state), (n, oldest) in sorted(counts.items())
        ]

    async def history(self, run_id: str) -> builtins.list[Record]:
        with self._lock:
            versions = list(self._history.get(run_id, ()))
        return [_unpack(p) for p in versions]

    async def list_outbox_events(self, workflow_name: str, limit: int) -> builtins.list[OutboxEvent]:
        with self._lock:
            pending = self._outbox.get(workflow_name)
            if not pending:
                return []
            return list(itertools.islice(pending.values(), limit))

    async def delete_outbox_events(self, ids: Sequence[str]) -> None:
        with self._lock:
            for event_id in ids:
                for pending in self._outbox.values():
                    if pending.pop(event_id, None) is not None:
                        break

    def outbox_signal(self, workflow_name: str) -> OutboxSignal:
        with self._lock:
            notifier = self._signals.setdefault(workflow_name, Notifier())
        return _Signal(notifier)


class _Signal:
    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier
        self._seen = notifier.generation

    async def wait(self) -> None:
        await self._notifier.wait(self._seen)
        self._seen = self._notifier.generation

    async def close(self) -> None:
        return None
