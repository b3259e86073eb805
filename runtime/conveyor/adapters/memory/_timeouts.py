"""MemoryTimeoutStore: scheduled timeouts in process memory, idempotent by (workflow, run, status, timer,
record version) like the Postgres one."""

from __future__ import annotations

import builtins
import dataclasses
import threading
from datetime import datetime

from conveyor._core.clock import Clock, SystemClock
from conveyor._core.records import TimeoutRecord
from conveyor.errors import TimeoutNotFound


class MemoryTimeoutStore:
    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._next_id = 1
        self._timeouts: dict[int, TimeoutRecord] = {}
        self._keys: dict[tuple[str, str, int, int, int], int] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

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
        key = (workflow_name, run_id, status, timer, record_version)
        with self._lock:
            existing = self._keys.get(key)
            if existing is not None and existing in self._timeouts:
                return self._timeouts[existing]
            record = TimeoutRecord(
                id=self._next_id,
                workflow_name=workflow_name,
                foreign_id=foreign_id,
                run_id=run_id,
                status=status,
                expire_at=expire_at,
                created_at=self._clock.now(),
                timer=timer,
                record_version=record_version,
            )
            self._next_id += 1
            self._timeouts[record.id] = record
            self._keys[key] = record.id
            return record

    async def complete(self, timeout_id: int) -> None:
        with self._lock:
            found = self._timeouts.get(timeout_id)
            if found is None:
                raise TimeoutNotFound(f"no timeout {timeout_id}")
            self._timeouts[timeout_id] = dataclasses.replace(found, completed=True)

    async def cancel(self, timeout_id: int) -> None:
        with self._lock:
            if self._timeouts.pop(timeout_id, None) is None:
                raise TimeoutNotFound(f"no timeout {timeout_id}")

    async def list(self, workflow_name: str) -> builtins.list[TimeoutRecord]:
        with self._lock:
            return [t for t in self._timeouts.values() if t.workflow_name == workflow_name]

    async def list_valid(self, workflow_name: str, status: int, now: datetime) -> builtins.list[TimeoutRecord]:
        with self._lock:
            return [
                t
                for t in self._timeouts.values()
                if t.workflow_name == workflow_name and t.status == status and not t.completed and t.expire_at <= now
            ]
