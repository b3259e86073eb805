"""The typed run a user function receives, and the special outcomes it may return instead of a status."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Generic, TypeAlias, TypeVar

from conveyor._core.records import Meta
from conveyor._core.runstate import RunState

T = TypeVar("T")
S = TypeVar("S")


@dataclasses.dataclass(frozen=True, slots=True)
class Skip:
    """Store nothing and move on to the next event."""


@dataclasses.dataclass(frozen=True, slots=True)
class PauseRun:
    """Pause the run (its object changes are not kept); it waits for a resume."""

    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class CancelRun:
    """Cancel the run for good (its object changes are not kept)."""

    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class SaveAndRepeat:
    """Store the object, keep the status, and run the same step again."""


Special: TypeAlias = Skip | PauseRun | CancelRun | SaveAndRepeat

_SKIP = Skip()
_SAVE_AND_REPEAT = SaveAndRepeat()


class Run(Generic[T, S]):
    """One run of a workflow as a function sees it. Change `object` in place; return the next status.

    `run_state` is RUNNING for a run a step is processing, even on its first step. After its data is deleted a
    run's `object` is None (or the replacement a custom_delete gave)."""

    __slots__ = (
        "created_at",
        "foreign_id",
        "meta",
        "object",
        "run_id",
        "run_state",
        "status",
        "updated_at",
        "workflow_name",
    )

    def __init__(
        self,
        *,
        workflow_name: str,
        foreign_id: str,
        run_id: str,
        run_state: RunState,
        status: S,
        object: T,
        created_at: datetime,
        updated_at: datetime,
        meta: Meta | None = None,
    ) -> None:
        self.workflow_name = workflow_name
        self.foreign_id = foreign_id
        self.run_id = run_id
        self.run_state = run_state
        self.status = status
        self.object = object
        self.created_at = created_at
        self.updated_at = updated_at
        self.meta = meta if meta is not None else Meta()

    def skip(self) -> Skip:
        """`return run.skip()`: store nothing, move on."""
        return _SKIP

    def pause(self, reason: str = "") -> PauseRun:
        """`return run.pause("why")`: pause the run in the same transaction as the rest of the outcome."""
        return PauseRun(reason)

    def cancel(self, reason: str = "") -> CancelRun:
        """`return run.cancel("why")`: cancel the run."""
        return CancelRun(reason)

    def save_and_repeat(self) -> SaveAndRepeat:
        """`return run.save_and_repeat()`: store the object and run this step again."""
        return _SAVE_AND_REPEAT

    def __repr__(self) -> str:
        return (
            f"Run(workflow_name={self.workflow_name!r}, foreign_id={self.foreign_id!r}, run_id={self.run_id!r}, "
            f"run_state={self.run_state.name}, status={self.status!r}, version={self.meta.version})"
        )
