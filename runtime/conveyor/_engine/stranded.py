"""Stranded runs: active runs (initiated, running or paused) at a status that the running code cannot move on from,
because no step, callback or timeout of it consumes that status. A deploy leaves them behind when its code drops
a status's step, or renumbers a status (runs store the number): they wait for ever, and nothing else says so.

An active run never rests at a status that was terminal for the code that stored it (reaching a terminal status
completes the run in the same write), so a status that is terminal in this code but holds active runs is one that
lost its step: those runs are stranded too. Every status without a step, callback or timeout is therefore one to
count, terminal or not, known to the code or not.

The stranded-runs check is a process of the workflow's table (`ProcessKind.STRANDED_CHECK`, which the system
worker holds). It counts them when it starts and every STRANDED_CHECK_INTERVAL, from the record store's count of
active runs per status (`RecordStore.count_active`, read from the index of unfinished runs), on the workflow's
clock; and changes nothing. For each status whose count (or its split by run state) changed since its last look it
logs a warning with the count, their run states and since when the longest has waited ("none left" at info once
it is gone) and sets
`conveyor_stranded_runs{workflow_name, status}` (the status's name, or its number when the code has no such
status), removing the series once the status has none. `Workflow.stranded_runs()` gives the latest counts, which
the Kubernetes system worker publishes into its Workflow's status for the operator to show (conveyor.kubernetes).

A failed count (a database down) keeps the last one and is retried after the process's back-off; a check that
stops (its role lost, the workflow stopping) forgets its counts and removes its series, as whoever holds the role
next counts again."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from conveyor._core.ports import StatusCount
from conveyor._core.runstate import RunState
from conveyor._engine.logs import logger
from conveyor._engine.runtime import Runtime
from conveyor._engine.spec import WorkflowSpec
from conveyor._engine.supervise import Stopping


@dataclasses.dataclass(frozen=True, slots=True)
class StrandedRuns:
    """The active runs at one status that the running code cannot move: `status` as stored, `name` the code's
    name for it (None when the code has no such status), `count` of them, how many are in each run state, and
    `oldest`, the earliest time one of them was last updated: since then the longest-waiting has not moved."""

    status: int
    name: str | None
    count: int
    run_states: tuple[tuple[RunState, int], ...]
    oldest: datetime

    @property
    def label(self) -> str:
        """The status as the metric and the logs name it: the code's name, else its number."""
        return self.name if self.name is not None else str(self.status)


def stranded(spec: WorkflowSpec[Any, Any], counts: Iterable[StatusCount]) -> tuple[StrandedRuns, ...]:
    """Of a workflow's active runs counted per status and run state (`count_active`), those at statuses `spec`
    has no step, callback or timeout for, one entry per status, ordered by status."""
    consumed = spec.consumed
    by_status: dict[int, list[StatusCount]] = {}
    for count in counts:
        if count.status not in consumed:
            by_status.setdefault(count.status, []).append(count)
    names = {int(member): member.name for member in spec.status_type}
    return tuple(
        StrandedRuns(
            status,
            names.get(status),
            sum(c.count for c in found),
            tuple((c.run_state, c.count) for c in sorted(found, key=lambda c: c.run_state)),
            min(c.oldest for c in found),
        )
        for status, found in sorted(by_status.items())
    )


def _where(runs: StrandedRuns) -> str:
    if runs.name is None:
        return f"status {runs.status}, which this code does not know,"
    return f"status {runs.name} ({runs.status})"


class StrandedCheck:
    """The check's process body (`run`) and what it found last (`latest`; None while it has not counted)."""

    def __init__(self, rt: Runtime[Any, Any], interval: float) -> None:
        self._rt = rt
        self.interval = interval
        self.latest: tuple[StrandedRuns, ...] | None = None
        # What was last logged and exported, by status.
        self._said: dict[int, StrandedRuns] = {}

    async def run(self) -> None:
        rt = self._rt
        try:
            while True:
                self.observe(stranded(rt.spec, await rt.store.count_active(rt.name)))
                await rt.drain.sleep(rt.clock.sleep, self.interval)
        except (asyncio.CancelledError, Stopping):
            self.forget()
            raise

    def observe(self, found: tuple[StrandedRuns, ...]) -> None:
        """Take a new count: log and export the statuses whose count (or its run states) changed."""
        rt, now = self._rt, {runs.status: runs for runs in found}
        for status, runs in now.items():
            before = self._said.get(status)
            if before is not None and (before.count, before.run_states) == (runs.count, runs.run_states):
                continue
            states = ", ".join(f"{n} {state.name.lower()}" for state, n in runs.run_states)
            logger.warning(
                "stranded runs: %d active run%s at %s which no step, callback or timeout of this code moves (%s; "
                "the oldest unmoved since %s) [workflow=%s]",
                runs.count,
                "" if runs.count == 1 else "s",
                _where(runs),
                states,
                runs.oldest.isoformat(),
                rt.name,
            )
            rt.metrics.stranded(runs.label, runs.count)
        for status, gone in self._said.items():
            if status not in now:
                logger.info("stranded runs: none left at %s [workflow=%s]", _where(gone).rstrip(","), rt.name)
                rt.metrics.stranded(gone.label, 0)
        self._said = now
        self.latest = found

    def forget(self) -> None:
        """The check stopped here: no counts, no series (the next holder of its role counts again)."""
        for gone in self._said.values():
            self._rt.metrics.stranded(gone.label, 0)
        self._said = {}
        self.latest = None
