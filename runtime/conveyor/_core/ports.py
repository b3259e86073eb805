"""The four adapter protocols (plus connectors) that the engine drives. `conveyor.adapters.base` re-exports
them for adapter authors; `conveyor.testing.conformance` checks any implementation against them.

Optional capabilities (`ShardOwningReceiver`, `OutboxBatchDeleter`, `FencingRoleScheduler`) extend a base
protocol with what some services can do and others cannot. They are declared here rather than found by name, so
that what an adapter promises by offering one is written down and type-checked; the engine tests for each with
`isinstance` once, when it starts the process that uses it, never per event.

Lifecycle: constructors take configuration only; `open()` connects and `close()` disconnects. The workflow
opens its adapters when it starts running and closes them when it stops. Both are idempotent, and an adapter
shared by several workflows of one process counts its opens.
"""

from __future__ import annotations

import builtins
import dataclasses
import enum
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol, runtime_checkable

from conveyor._core.records import Event, OutboxEvent, OutgoingEvent, Record, TimeoutRecord
from conveyor._core.runstate import RunState


class SortOrder(enum.IntEnum):
    ASCENDING = 1
    DESCENDING = 2


@dataclasses.dataclass(frozen=True, slots=True)
class RecordFilter:
    """Filters of RecordStore.list; every field given must match (a field's values are alternatives)."""

    foreign_ids: Sequence[str] = ()
    statuses: Sequence[int] = ()
    run_states: Sequence[RunState] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None

    def matches(self, record: Record) -> bool:
        if self.foreign_ids and record.foreign_id not in self.foreign_ids:
            return False
        if self.statuses and record.status not in self.statuses:
            return False
        if self.run_states and record.run_state not in self.run_states:
            return False
        if self.created_after is not None and not record.created_at > self.created_after:
            return False
        return not (self.created_before is not None and not record.created_at < self.created_before)


@dataclasses.dataclass(frozen=True, slots=True)
class StatusCount:
    """How many active runs (initiated, running or paused) of a workflow are at `status` in `run_state`, and
    `oldest`, the earliest `updated_at` among them: since then the longest-waiting of them has not moved."""

    status: int
    run_state: RunState
    count: int
    oldest: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Shard:
    """Shard `index` (from 1) of `count`: a receiver given a shard gets exactly the events whose foreign id maps
    to it, and every event maps to exactly one shard."""

    index: int = 1
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index} of {self.count}: expected 1 <= index <= count")


class OutboxSignal(Protocol):
    async def wait(self) -> None:
        """Return once an outbox event may have been written since the previous return (spurious returns are
        fine; a missed write is not). The relay still polls as a safety net."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class RecordStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def store(self, record: Record, *, expected_version: int | None = None) -> None:
        """Write `record` and its outbox event (`conveyor.adapters.base.outbox_data(record)`) atomically, and add the
        record to the run's history.

        The caller has already set `record.meta.version`. With `expected_version=None` the run is new: raise
        WorkflowInProgress if the workflow has an unfinished run for the same foreign id. Otherwise the stored
        version must equal `expected_version`, or raise VersionConflict and write nothing."""
        ...

    async def store_all(self, writes: Sequence[tuple[Record, int | None]]) -> None:
        """Store every `(record, expected_version)` as `store` would, in order, in ONE transaction: all of them or,
        if any is refused (VersionConflict, WorkflowInProgress), none, and the first refusal is raised. Used where
        two runs change together, as when a fork starts a new run and cancels the paused one it came from (the
        old run's write goes first, so the new run is no longer "in progress" beside it)."""
        ...

    async def lookup(self, run_id: str) -> Record:
        """The run's current record; RecordNotFound if there is none."""
        ...

    async def count_active(self, workflow_name: str) -> builtins.list[StatusCount]:
        """The workflow's active runs (initiated, running, paused) counted per status and run state, each with
        the oldest `updated_at`, ordered by status then run state. It reads active runs only (an index of them),
        so it costs what the active runs cost, however many finished runs the store holds."""
        ...

    async def latest(self, workflow_name: str, foreign_id: str) -> Record:
        """The most recently created run of the workflow for the foreign id; RecordNotFound if there is none."""
        ...

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
        """Runs in creation order (or its reverse), after skipping `offset` matches, at most `limit` of them.

        `after` is keyset paging: the run id of the last run of the previous page (in the same `order`); the page
        holds the matches that come after that run, so reading page 4000 costs what reading page 1 does, where an
        offset costs a read of every run it skips. InvalidInput naming `after` if no run has that id."""
        ...

    async def history(self, run_id: str) -> builtins.list[Record]:
        """Every version of the run that was stored, oldest first (empty if the run is unknown)."""
        ...

    async def list_outbox_events(self, workflow_name: str, limit: int) -> builtins.list[OutboxEvent]:
        """Unpublished events of the workflow, oldest first."""
        ...

    async def delete_outbox_events(self, ids: Sequence[str]) -> None:
        """Forget published events; unknown ids are ignored."""
        ...

    def outbox_signal(self, workflow_name: str) -> OutboxSignal: ...


@runtime_checkable
class OutboxBatchDeleter(RecordStore, Protocol):
    """A record store that deletes a published outbox batch and lists the next one in one round trip (the outbox
    relay then pays one round trip per batch instead of two).

    An implementation promises that `delete_and_list_outbox_events(ids, workflow_name, limit)` does exactly what
    `delete_outbox_events(ids)` followed by `list_outbox_events(workflow_name, limit)` would: the ids are gone
    when it returns (unknown ids ignored), and the listing holds none of them, whatever snapshot it reads."""

    async def delete_and_list_outbox_events(
        self, ids: Sequence[str], workflow_name: str, limit: int
    ) -> builtins.list[OutboxEvent]: ...


@runtime_checkable
class EventSender(Protocol):
    async def send(self, events: Sequence[OutgoingEvent]) -> None:
        """Publish the events, in order; when this returns they are durable."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class EventReceiver(Protocol):
    async def recv(self) -> Event:
        """The next event of this receiver's topic and shard, waiting for one if needed."""
        ...

    async def ack(self, event: Event) -> None:
        """Mark `event` (and everything before it) consumed for this receiver's name. An event never acked is
        delivered again to the next receiver of the same name."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class ShardOwningReceiver(EventReceiver, Protocol):
    """A receiver that can say, without receiving anything, whose events it gets. The engine uses it for the
    in-process handoff: a step that commits a run's next record gives it straight to the local consumer of the
    next step whose receiver owns the run's foreign id (see `conveyor._engine.handoff`).

    An implementation promises that `owns(foreign_id)` is true exactly when this receiver is the one that gets
    that foreign id's events on its topic: of the receivers of the shards of one count, exactly one owns each
    foreign id, and a receiver of the whole topic owns every foreign id. It is answered from memory (the engine
    asks on every commit). A wrong true would run a step in two places at once, a wrong false only loses the
    shortcut; an adapter that cannot be exact should not offer this."""

    def owns(self, foreign_id: str) -> bool: ...


@runtime_checkable
class EventStreamer(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def sender(self, topic: str) -> EventSender: ...

    async def receiver(
        self,
        topic: str,
        name: str,
        *,
        shard: Shard = Shard(),
        poll_frequency: float = 0.5,
        from_latest: bool = False,
    ) -> EventReceiver:
        """A receiver named `name`: consumption resumes where the last receiver of that name acknowledged; with
        `from_latest` and no acknowledged position, it starts after the events already published."""
        ...


@runtime_checkable
class RoleLease(Protocol):
    @property
    def role(self) -> str: ...

    @property
    def held(self) -> bool:
        """False from the moment the holder can no longer be sure it holds the role."""
        ...

    async def wait_lost(self) -> None:
        """Return when the role is lost (never, while it is held)."""
        ...


@runtime_checkable
class RoleScheduler(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def hold(self, role: str) -> AbstractAsyncContextManager[RoleLease]:
        """Wait until this process holds `role`, exclusively, and keep it until the block exits."""
        ...


@runtime_checkable
class FencingRoleScheduler(RoleScheduler, Protocol):
    """A role scheduler that keeps the shards of one group (a step's, or a connector's) from running under two
    shard counts at once. Shard roles are named with their count (k of n), so after a change of count the old
    and the new roles are different roles, and plain exclusivity would let both sets run over the same runs.
    A scheduler of one process needs no fence (it runs one count at a time).

    An implementation promises that after `fence(role, group=..., shards=n)`, `hold(role)` never holds the role
    while a role of the same group fenced with another count is held, by any process (a new count waits for the
    old count's holders to release or expire); the fence stays for every later hold of the role. `fenced(role)`
    says why the role is being held back by its fence right now (a short sentence for a readiness check, e.g.
    "waiting for shards of n=2 to stop"), or None when it is not."""

    def fence(self, role: str, *, group: str, shards: int) -> None: ...

    def fenced(self, role: str) -> str | None: ...


@runtime_checkable
class TimeoutStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

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
        """Schedule a timeout. Idempotent: the same (workflow, run, status, timer, record_version) gives back the
        timeout already scheduled instead of a second one."""
        ...

    async def complete(self, timeout_id: int) -> None:
        """Mark as fired; TimeoutNotFound if unknown."""
        ...

    async def cancel(self, timeout_id: int) -> None:
        """Remove; TimeoutNotFound if unknown."""
        ...

    async def list(self, workflow_name: str) -> builtins.list[TimeoutRecord]:
        """Every timeout of the workflow not cancelled, completed ones included, in creation order."""
        ...

    async def list_valid(self, workflow_name: str, status: int, now: datetime) -> builtins.list[TimeoutRecord]:
        """Timeouts at `status` that are not completed and expire at or before `now`, in creation order."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectorEvent:
    """An event from outside the workflow (another workflow, a queue, a webhook log) that a connector delivers."""

    id: str
    foreign_id: str
    type: str = ""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    created_at: datetime | None = None


@runtime_checkable
class ConnectorConsumer(Protocol):
    async def recv(self) -> ConnectorEvent: ...

    async def ack(self, event: ConnectorEvent) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class Connector(Protocol):
    async def make(self, consumer_name: str) -> ConnectorConsumer:
        """A consumer that resumes after the last event acknowledged under `consumer_name`."""
        ...
