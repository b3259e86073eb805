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
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from conveyor._core.records import Event, Record

# Run versions handled here, remembered so their events are skipped without a lookup: between 10,000 and twice
# that many runs.
_REMEMBERED = 10_000


class Target:
    """The handoff side of one running step consumer (one status and shard)."""

    def __init__(
        self,
        owns: Callable[[str], bool],
        handle: Callable[[Record], Awaitable[None]],
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
        self._tasks: set[asyncio.Task[None]] = set()
        # The newest version handled here per run: the recent generation, and the one before it.
        self._handled: dict[str, int] = {}
        self._handled_before: dict[str, int] = {}

    def offer(self, record: Record) -> bool:
        """Start handling `record` now, unless its run is claimed or this version was handled, `window` handoffs
        run already, or the workflow is stopping. False if not started: the event will bring the run."""
        run_id = record.run_id
        if (
            run_id in self._claims
            or len(self._tasks) >= self._window
            or not self._accepting()
            # Its event came first (it can: the relay does not wait for the committer to resume) and was handled.
            or self.handled(run_id, record.meta.version)
        ):
            return False
        self._claims[run_id] = None
        # The task leaves the set itself as it ends: a done callback would cost the loop one more call per handoff.
        self._tasks.add(asyncio.get_running_loop().create_task(self._run(record)))
        return True

    async def _run(self, record: Record) -> None:
        try:
            async with self._working():
                await self._handle(record)
            self.note_handled(record.run_id, record.meta.version)
        except Exception:
            pass  # the event comes anyway and is handled, retried and counted as usual
        finally:
            self._release(record.run_id)
            self._tasks.discard(asyncio.current_task())

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
        tasks = list(self._tasks)
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
        if record.run_state.stopped():
            return False
        for target in self._targets.get(record.status, ()):
            if target.owns(record.foreign_id):
                return target.offer(record)
        return False
