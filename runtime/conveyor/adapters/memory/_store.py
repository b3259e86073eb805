"""MemoryRecordStore: runs, their history and the outbox in process memory, with the same atomicity and
optimistic-concurrency rules as the Postgres store (every store is one step under one lock)."""

from __future__ import annotations

import builtins
import itertools
import threading
from collections.abc import Sequence

from conveyor._core.clock import Clock, SystemClock
from conveyor._core.ports import Order, OutboxSignal, RecordFilter
from conveyor._core.records import OutboxEvent, Record, outbox_data
from conveyor.adapters.memory._notify import Notifier
from conveyor.errors import InvalidInput, RecordNotFound, VersionConflict, WorkflowInProgress


class MemoryRecordStore:
    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._records: dict[str, Record] = {}
        self._order: list[str] = []
        self._latest: dict[tuple[str, str], str] = {}
        self._history: dict[str, list[Record]] = {}
        self._outbox: dict[str, dict[str, OutboxEvent]] = {}
        self._outbox_ids = itertools.count(1)
        self._signals: dict[str, Notifier] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def store(self, record: Record, *, expected_version: int | None = None) -> None:
        kept = record.copy()
        key = (kept.workflow_name, kept.foreign_id)
        with self._lock:
            current = self._records.get(kept.run_id)
            if expected_version is None:
                if current is not None:
                    raise VersionConflict(kept.run_id, 0, current.meta.version)
                latest_id = self._latest.get(key)
                if latest_id is not None:
                    latest = self._records[latest_id]
                    if latest.run_state.valid() and not latest.run_state.finished():
                        raise WorkflowInProgress(
                            f"workflow {kept.workflow_name!r} has run {latest_id} in progress for {kept.foreign_id!r}"
                        )
                self._order.append(kept.run_id)
                self._latest[key] = kept.run_id
                self._history[kept.run_id] = []
            elif current is None or current.meta.version != expected_version:
                raise VersionConflict(kept.run_id, expected_version, None if current is None else current.meta.version)
            self._records[kept.run_id] = kept
            self._history[kept.run_id].append(kept)
            event_id = f"outbox-id-{next(self._outbox_ids)}"
            self._outbox.setdefault(kept.workflow_name, {})[event_id] = OutboxEvent(
                event_id, kept.workflow_name, outbox_data(kept), self._clock.now()
            )
            signal = self._signals.get(kept.workflow_name)
        if signal is not None:
            signal.notify()

    async def lookup(self, run_id: str) -> Record:
        with self._lock:
            found = self._records.get(run_id)
            if found is None:
                raise RecordNotFound(f"no run {run_id!r}")
            return found.copy()

    async def latest(self, workflow_name: str, foreign_id: str) -> Record:
        with self._lock:
            run_id = self._latest.get((workflow_name, foreign_id))
            if run_id is None:
                raise RecordNotFound(f"workflow {workflow_name!r} has no run for {foreign_id!r}")
            return self._records[run_id].copy()

    async def list(
        self,
        workflow_name: str | None = None,
        *,
        offset: int = 0,
        limit: int = 25,
        order: Order = Order.ASCENDING,
        filter: RecordFilter | None = None,
    ) -> builtins.list[Record]:
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidInput("offset", "an integer >= 0", offset)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInput("limit", "an integer >= 1", limit)
        with self._lock:
            ids = self._order if order is Order.ASCENDING else reversed(self._order)
            found: builtins.list[Record] = []
            skipped = 0
            for run_id in ids:
                record = self._records[run_id]
                if workflow_name is not None and record.workflow_name != workflow_name:
                    continue
                if filter is not None and not filter.matches(record):
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                found.append(record.copy())
                if len(found) == limit:
                    break
            return found

    async def history(self, run_id: str) -> builtins.list[Record]:
        with self._lock:
            return [r.copy() for r in self._history.get(run_id, ())]

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
