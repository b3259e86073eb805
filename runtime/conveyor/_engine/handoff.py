"""In-process handoff: a step that stored a run's next record gives it straight to the consumer of the next step
when that consumer runs in this process and owns the run's shard, so the next step starts at once instead of
after the outbox relay, the streamer and a lookup (most of a step's latency).

Nothing is given up for it:
- the record was committed first, with its outbox event, so the event is still published and still consumed;
- the consumer claims a run while it handles it, by handoff or by event: an event of a claimed run waits for the
  claim to end, and a run already claimed, or whose version was already handled here (its event can come before
  the committer gets to hand it on), is not handed off. So one consumer never runs a step twice for one record
  version, and an event is acknowledged only after the handoff's transaction;
- the event, when it comes, is skipped without a lookup if a handoff here handled its version (stored the
  outcome, lost it to a newer version, or the step asked to skip: what the event would do again), also when
  it came while that handoff ran and waited for its claim; such an event is not observed in the step's latency,
  which the handoff observed. If the handoff failed, the event is handled as usual (retries, error counts and
  auto-pause stay on its path);
- only a consumer whose receiver says it owns the foreign id (`owns`) takes handoffs, only while it runs (it
  holds its role), and its handoffs are cancelled when it stops: a cancelled or failed handoff leaves the event
  to whoever owns it then. Across processes, as ever, the store's version check lets one outcome in.

A handoff's task goes on with its run: when the step it ran stored a next record that a consumer here takes, the
same task runs that step next, under that consumer's claim, window and drain, and is that consumer's to cancel
from then on. A task costs the loop about 2.4 us to make and end; a run then makes one for all its steps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from conveyor._core.records import Event, Record

# Run versions handled here, remembered so their events are skipped without a lookup: between 10,000 and twice
# that many runs.
_REMEMBERED = 10_000

# A handoff that goes on with its run lets the loop run others every this many steps: a step that stores and
# repeats (save_and_repeat, or a cycle of statuses) on a store that answers without waiting would otherwise hold
# the loop for good. A run of a few steps never waits for it.
_STEPS_BEFORE_YIELDING = 8


class Target:
    """The handoff side of one running step consumer (one status and shard). `handle` runs the step on a record
    and returns the run's next record if it stored one (a handoff goes on with it: see the module docstring)."""

    def __init__(
        self,
        owns: Callable[[str], bool],
        handle: Callable[[Record], Awaitable[Record | None]],
        working: Callable[[], AbstractAsyncContextManager[None]],
        accepting: Callable[[], bool],
        window: int,
    ) -> None:
        self.owns = owns
        self._handle = handle
        self._working = working
        self._accepting = accepting
        self._window = window
        # The runs claimed here: to the future their waiters wait on, or to None while nobody waits (most claims
        # are never waited for, so that future is made only when a waiter comes).
        self._claims: dict[str, asyncio.Future[None] | None] = {}
        # The handoffs running here, by run: keyed, so that a task leaves without asking which task it is.
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # The newest version handled here per run: the recent generation, and the one before it.
        self._handled: dict[str, int] = {}
        self._handled_before: dict[str, int] = {}

    def offer(self, record: Record, chain: Handoff | None = None) -> bool:
        """Start handling `record` now, unless its run is claimed or this version was handled, `window` handoffs
        run already, or the workflow is stopping. False if not started: the event will bring the run. With
        `chain`, the handoff goes on with the record it stores, if a consumer of `chain` takes that."""
        if not self._may_take(record):
            return False
        run_id = record.run_id
        self._claims[run_id] = None
        self._tasks[run_id] = asyncio.get_running_loop().create_task(_hand_on(self, record, chain))
        return True

    def adopt(self, record: Record, task: asyncio.Task[None]) -> bool:
        """Take `record` for `task`, the handoff that ran the run's step before and runs this one next. False
        (nothing taken) where `offer` would be."""
        if not self._may_take(record):
            return False
        run_id = record.run_id
        self._claims[run_id] = None
        self._tasks[run_id] = task
        return True

    def _may_take(self, record: Record) -> bool:
        run_id = record.run_id
        return not (
            run_id in self._claims
            or len(self._tasks) >= self._window
            or not self._accepting()
            # Its event came first (it can: the relay does not wait for the committer to resume) and was handled.
            or self.handled(run_id, record.meta.version)
        )

    def note_handled(self, run_id: str, version: int | None) -> None:
        """Note that this version of the run was handled here, by handoff or by event: its outcome stored,
        discarded on a version conflict, or the step asked to skip. Handling it again would do the same."""
        if version is None:
            return
        recent = self._handled
        if recent.get(run_id, -1) >= version:
            return
        recent[run_id] = version
        if len(recent) >= _REMEMBERED:
            # Two generations, each up to _REMEMBERED runs: forgetting is one swap, never a scan.
            self._handled_before, self._handled = recent, {}

    def _version_handled(self, run_id: str) -> int | None:
        found = self._handled.get(run_id)
        return self._handled_before.get(run_id) if found is None else found

    def done_already(self, event: Event) -> bool:
        """Whether the event's version of its run was handled here and nothing handles the run now: the event
        needs no task, claim or lookup (most events, once handoffs run)."""
        run_id = event.run_id
        if run_id in self._claims:
            return False
        handled = self._version_handled(run_id)
        if handled is None:
            return False
        version = event.record_version
        return version is not None and version <= handled

    def handled(self, run_id: str, version: int | None) -> bool:
        """Whether this version of the run (or a newer one) was handled here."""
        handled = self._version_handled(run_id)
        return handled is not None and version is not None and version <= handled

    def busy(self, run_id: str) -> bool:
        """Whether a handoff or an event of the run is being handled here."""
        return run_id in self._claims

    def take(self, run_id: str) -> bool:
        """Claim the run now if nobody in this consumer handles it (most often); False if somebody does (then
        await `claim`)."""
        if run_id in self._claims:
            return False
        self._claims[run_id] = None
        return True

    async def claim(self, run_id: str) -> None:
        """Wait until nobody in this consumer handles the run, then claim it (release with `release`)."""
        await self._unclaimed(run_id)
        self._claims[run_id] = None

    async def _unclaimed(self, run_id: str) -> None:
        claims = self._claims
        while run_id in claims:
            waited = claims[run_id]
            if waited is None:
                waited = claims[run_id] = asyncio.get_running_loop().create_future()
            await asyncio.shield(waited)

    def release(self, run_id: str) -> None:
        self._release(run_id)

    def _release(self, run_id: str) -> None:
        waited = self._claims.pop(run_id, None)
        if waited is not None and not waited.done():
            waited.set_result(None)

    async def close(self) -> None:
        """Stop every handoff still running (their events come and are handled by whoever owns them then)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Handoff:
    """The step consumers of one workflow running in this process, by status."""

    def __init__(self) -> None:
        self._targets: dict[int, list[Target]] = {}

    def add(self, status: int, target: Target) -> None:
        self._targets.setdefault(status, []).append(target)

    def remove(self, status: int, target: Target) -> None:
        targets = self._targets.get(status, [])
        if target in targets:
            targets.remove(target)

    def offer(self, record: Record) -> bool:
        """Give a just-committed record to the local consumer of its status that owns its run, if any."""
        target = self._owner(record)
        return target is not None and target.offer(record, self)

    def adopt(self, record: Record, task: asyncio.Task[None]) -> Target | None:
        """The local consumer that takes `record` for `task` (a handoff going on with its run), if one does."""
        target = self._owner(record)
        return target if target is not None and target.adopt(record, task) else None

    def _owner(self, record: Record) -> Target | None:
        if record.run_state.stopped():
            return None
        for target in self._targets.get(record.status, ()):
            if target.owns(record.foreign_id):
                return target
        return None


async def _hand_on(target: Target, record: Record, chain: Handoff | None) -> None:
    """A handoff's task: run `target`'s step on `record`, then the step of whichever consumer of `chain` takes the
    record that stored, and so on, under each consumer's claim and drain in turn."""
    task = asyncio.current_task()
    assert task is not None
    steps = 0
    while True:
        run_id = record.run_id
        stored = None
        steps += 1
        try:
            if steps % _STEPS_BEFORE_YIELDING == 0:
                await asyncio.sleep(0)
            async with target._working():
                stored = await target._handle(record)
            target.note_handled(run_id, record.meta.version)
        except Exception:
            pass  # the event comes anyway and is handled, retried and counted as usual
        finally:
            target._release(run_id)
            del target._tasks[run_id]
        if stored is None or chain is None:
            return
        adopted = chain.adopt(stored, task)
        if adopted is None:
            return  # its event brings it to whoever owns it
        target, record = adopted, stored
