"""What a built workflow is made of: its steps, callbacks, timeouts, connectors and hooks, frozen at build time
(frozen dataclasses over read-only mappings and tuples)."""

from __future__ import annotations

import dataclasses
import enum
import inspect
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from conveyor._core.codec import Codec
from conveyor._core.ports import Connector, ConnectorEvent
from conveyor._engine.graph import StatusGraph
from conveyor._engine.options import Options
from conveyor._engine.run import Run, Special

if TYPE_CHECKING:
    from conveyor._engine.workflow import Workflow

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

StepResult: TypeAlias = S | Special
StepFn: TypeAlias = Callable[[Run[T, S]], "StepResult[S] | Awaitable[StepResult[S]]"]
CallbackFn: TypeAlias = Callable[[Run[T, S], bytes], "StepResult[S] | Awaitable[StepResult[S]]"]
TimeoutFn: TypeAlias = Callable[[Run[T, S], datetime], "StepResult[S] | Awaitable[StepResult[S]]"]
TimerFn: TypeAlias = Callable[[Run[T, S], datetime], "datetime | Awaitable[datetime | None] | None"]
HookFn: TypeAlias = Callable[[Run[T, S]], "Awaitable[None] | None"]
ConnectorFn: TypeAlias = Callable[["Workflow[T, S]", ConnectorEvent], "Awaitable[None] | None"]
CustomDeleteFn: TypeAlias = Callable[[Run[T, S]], "T | Awaitable[T | None] | None"]


class DurationTimer:
    """Expire `duration` after the run reached the status."""

    def __init__(self, duration: timedelta) -> None:
        self.duration = duration

    def __call__(self, run: Run[Any, Any], now: datetime) -> datetime:
        return now + self.duration

    def __repr__(self) -> str:
        return f"duration_timer({self.duration!r})"


class TimeTimer:
    """Expire at a fixed time."""

    def __init__(self, when: datetime) -> None:
        self.when = when

    def __call__(self, run: Run[Any, Any], now: datetime) -> datetime:
        return self.when

    def __repr__(self) -> str:
        return f"time_timer({self.when!r})"


def duration_timer(duration: timedelta) -> DurationTimer:
    """A timer for `add_timeout` that expires `duration` after the run reached the status."""
    if not isinstance(duration, timedelta) or duration < timedelta(0):
        from conveyor.errors import InvalidInput

        raise InvalidInput("duration", "a timedelta >= 0", duration)
    return DurationTimer(duration)


def time_timer(when: datetime) -> TimeTimer:
    """A timer for `add_timeout` that expires at `when` (timezone-aware)."""
    if not isinstance(when, datetime) or when.tzinfo is None:
        from conveyor.errors import InvalidInput

        raise InvalidInput("when", "a timezone-aware datetime", when)
    return TimeTimer(when)


def is_async(fn: object) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004


@dataclasses.dataclass(frozen=True, slots=True)
class StepSpec(Generic[T, S]):
    status: S
    fn: StepFn[T, S]
    destinations: tuple[S, ...]
    options: Options = dataclasses.field(default_factory=Options)


@dataclasses.dataclass(frozen=True, slots=True)
class CallbackSpec(Generic[T, S]):
    status: S
    fn: CallbackFn[T, S]
    destinations: tuple[S, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class TimeoutSpec(Generic[T, S]):
    status: S
    timer: TimerFn[T, S]
    fn: TimeoutFn[T, S]
    destinations: tuple[S, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectorSpec(Generic[T, S]):
    name: str
    connector: Connector
    fn: ConnectorFn[T, S]
    options: Options = dataclasses.field(default_factory=Options)


@dataclasses.dataclass(frozen=True, slots=True)
class WorkflowSpec(Generic[T, S]):
    """A checked workflow definition; `build()` pairs it with adapters. Frozen, its mappings read-only: what a
    workflow runs is what was built (options from a manifest are given to `build()`, never patched in after)."""

    name: str
    object_type: type[T]
    status_type: type[S]
    codec: Codec[T]
    graph: StatusGraph
    steps: Mapping[int, StepSpec[T, S]]
    callbacks: Mapping[int, tuple[CallbackSpec[T, S], ...]]
    timeouts: Mapping[int, tuple[TimeoutSpec[T, S], ...]]
    timeout_options: Mapping[int, Options]
    connectors: tuple[ConnectorSpec[T, S], ...]
    hooks: Mapping[int, HookFn[T, S]]
    default_start: S

    @property
    def consumed(self) -> frozenset[int]:
        """The statuses this code moves runs on from: those with a step, a callback or a timeout. An active run at
        any other status stays there (a terminal status completes the run in the same write that reaches it)."""
        return frozenset(self.steps) | frozenset(self.callbacks) | frozenset(self.timeouts)
