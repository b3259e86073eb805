"""Builder: declare a workflow's steps, callbacks, timeouts, connectors and hooks, then `build()` it against
adapters. Every problem of the graph is reported at once, by `build()`, as InvalidWorkflow."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Generic, TypeVar

from conveyor._core.clock import Clock
from conveyor._core.codec import codec_for
from conveyor._core.ports import Connector, EventStreamer, RecordStore, RoleScheduler, TimeoutStore
from conveyor._core.runstate import RunState
from conveyor._engine.graph import StatusGraph
from conveyor._engine.options import Options
from conveyor._engine.spec import (
    CallbackFn,
    CallbackSpec,
    ConnectorFn,
    ConnectorSpec,
    CustomDeleteFn,
    HookFn,
    StepFn,
    StepSpec,
    TimeoutFn,
    TimeoutSpec,
    TimerFn,
    WorkflowSpec,
)
from conveyor.errors import InvalidInput, InvalidWorkflow

if TYPE_CHECKING:
    from conveyor._engine.workflow import Workflow

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

_NAME_MAX = 200


class _OptionsHandle:
    """What every `add_*` returns: `.with_options(...)` sets that process's options."""

    _unsupported: tuple[str, ...] = ()

    def __init__(self, what: str) -> None:
        self._what = what
        self.options = Options()

    def with_options(
        self,
        *,
        parallel_count: int | None = None,
        polling_frequency: timedelta | None = None,
        err_backoff: timedelta | None = None,
        lag_alert: timedelta | None = None,
        consume_lag: timedelta | None = None,
        pause_after_err_count: int | None = None,
        max_in_flight: int | None = None,
    ) -> _OptionsHandle:
        given = {
            "parallel_count": parallel_count,
            "polling_frequency": polling_frequency,
            "err_backoff": err_backoff,
            "lag_alert": lag_alert,
            "consume_lag": consume_lag,
            "pause_after_err_count": pause_after_err_count,
            "max_in_flight": max_in_flight,
        }
        for name in self._unsupported:
            if given[name] is not None:
                raise InvalidInput(name, f"no value: {self._what} cannot take {name}")
        self.options = Options.checked(**given)
        return self


class StepHandle(_OptionsHandle):
    pass


class CallbackHandle(_OptionsHandle):
    # A callback runs inside the caller of Workflow.callback: there is no consumer to configure.
    _unsupported = (
        "parallel_count",
        "polling_frequency",
        "err_backoff",
        "lag_alert",
        "consume_lag",
        "pause_after_err_count",
        "max_in_flight",
    )


class TimeoutHandle(_OptionsHandle):
    # As in the reference: one poller per status, and it fires on expiry, not after a lag.
    _unsupported = ("parallel_count", "consume_lag", "max_in_flight")


class ConnectorHandle(_OptionsHandle):
    _unsupported = ("polling_frequency", "pause_after_err_count", "max_in_flight")


class Builder(Generic[T, S]):
    """`Builder("order-processing", Order, OrderStatus)`, then `add_step(...)` etc., then `build(...)`."""

    def __init__(self, name: str, object_type: type[T], status_type: type[S]) -> None:
        if not isinstance(name, str) or not name.strip() or len(name) > _NAME_MAX or not name.isprintable():
            raise InvalidInput("name", f"a non-empty printable workflow name of at most {_NAME_MAX} characters", name)
        if not isinstance(status_type, type) or not issubclass(status_type, enum.IntEnum):
            raise InvalidInput("status_type", "an enum.IntEnum subclass", status_type)
        if not isinstance(object_type, type):
            raise InvalidInput("object_type", "a type (a pydantic model, say)", object_type)
        self.name = name
        self.object_type = object_type
        self.status_type = status_type
        self._steps: list[tuple[object, object, tuple[object, ...], StepHandle]] = []
        self._callbacks: list[tuple[object, object, tuple[object, ...]]] = []
        self._timeouts: list[tuple[object, object, object, tuple[object, ...], TimeoutHandle]] = []
        self._connectors: list[tuple[object, object, object, ConnectorHandle]] = []
        self._hooks: dict[RunState, object] = {}

    def add_step(self, from_status: S, fn: StepFn[T, S], *to: S) -> StepHandle:
        """Consume runs at `from_status` with `fn`, which returns one of `to` (or a special outcome)."""
        handle = StepHandle(f"the step from {from_status!r}")
        self._steps.append((from_status, fn, to, handle))
        return handle

    def add_callback(self, from_status: S, fn: CallbackFn[T, S], *to: S) -> CallbackHandle:
        """Let `Workflow.callback(foreign_id, from_status, payload)` move a run on with `fn`."""
        self._callbacks.append((from_status, fn, to))
        return CallbackHandle(f"the callback from {from_status!r}")

    def add_timeout(self, from_status: S, timer: TimerFn[T, S], fn: TimeoutFn[T, S], *to: S) -> TimeoutHandle:
        """When a run reaches `from_status`, `timer(run, now)` says when (None: never); then `fn(run, now)`."""
        handle = TimeoutHandle(f"the timeout from {from_status!r}")
        self._timeouts.append((from_status, timer, fn, to, handle))
        return handle

    def add_connector(self, name: str, connector: Connector, fn: ConnectorFn[T, S]) -> ConnectorHandle:
        """Feed events from outside (`connector`) to `fn(workflow, event)`, e.g. to trigger runs."""
        handle = ConnectorHandle(f"the connector {name!r}")
        self._connectors.append((name, connector, fn, handle))
        return handle

    def on_pause(self, fn: HookFn[T, S]) -> None:
        """Call `fn(run)` once each time a run is paused."""
        self._hooks[RunState.PAUSED] = fn

    def on_cancel(self, fn: HookFn[T, S]) -> None:
        """Call `fn(run)` once each time a run is cancelled."""
        self._hooks[RunState.CANCELLED] = fn

    def on_complete(self, fn: HookFn[T, S]) -> None:
        """Call `fn(run)` once each time a run completes."""
        self._hooks[RunState.COMPLETED] = fn

    def spec(
        self, *, timeout_store_given: bool = True, step_options: Mapping[S, Options] | None = None
    ) -> WorkflowSpec[T, S]:
        """The checked definition; raises InvalidWorkflow listing every problem. `step_options` (by a step's
        from-status) are put over the options its `with_options` gave, field by field (a deployment's manifest)."""
        problems: list[str] = []
        overrides = self._overrides(step_options)
        graph = StatusGraph()
        steps: dict[int, StepSpec[T, S]] = {}
        callbacks: dict[int, list[CallbackSpec[T, S]]] = {}
        timeouts: dict[int, list[TimeoutSpec[T, S]]] = {}
        timeout_options: dict[int, Options] = {}

        for raw_from, fn, raw_to, step_handle in self._steps:
            where = f"add_step({raw_from!r}, ...)"
            source, targets = self._statuses(where, raw_from, raw_to, problems)
            self._callable(where, "fn", fn, problems)
            if source is None:
                continue
            if int(source) in steps:
                problems.append(f"{where}: a step from {source.name} already exists; one step per status")
                continue
            options = step_handle.options
            override = overrides.pop(int(source), None)
            if override is not None:
                options = override.over(options)
            steps[int(source)] = StepSpec(source, fn, targets, options)  # type: ignore[arg-type]
            graph.add(int(source), tuple(int(t) for t in targets))

        for raw_from, fn, raw_to in self._callbacks:
            where = f"add_callback({raw_from!r}, ...)"
            source, targets = self._statuses(where, raw_from, raw_to, problems)
            self._callable(where, "fn", fn, problems)
            if source is not None:
                callbacks.setdefault(int(source), []).append(CallbackSpec(source, fn, targets))  # type: ignore[arg-type]
                graph.add(int(source), tuple(int(t) for t in targets))

        for raw_from, timer, fn, raw_to, timeout_handle in self._timeouts:
            where = f"add_timeout({raw_from!r}, ...)"
            source, targets = self._statuses(where, raw_from, raw_to, problems)
            self._callable(where, "timer", timer, problems)
            self._callable(where, "fn", fn, problems)
            if source is not None:
                timeouts.setdefault(int(source), []).append(
                    TimeoutSpec(source, timer, fn, targets)  # type: ignore[arg-type]
                )
                timeout_options[int(source)] = timeout_handle.options
                graph.add(int(source), tuple(int(t) for t in targets))

        connectors: list[ConnectorSpec[T, S]] = []
        for name, connector, fn, connector_handle in self._connectors:
            where = f"add_connector({name!r}, ...)"
            if not isinstance(name, str) or not name.strip():
                problems.append(f"{where}: name must be a non-empty string")
            elif any(c.name == name for c in connectors):
                problems.append(f"{where}: connector names must be unique")
            if not callable(getattr(connector, "make", None)):
                problems.append(f"{where}: connector must have a make(consumer_name) method")
            self._callable(where, "fn", fn, problems)
            connectors.append(ConnectorSpec(str(name), connector, fn, connector_handle.options))  # type: ignore[arg-type]

        for state, hook in self._hooks.items():
            self._callable(f"on_{state.name.lower()}", "fn", hook, problems)

        for status in overrides:
            problems.append(f"step_options: {self.status_type(status)!r} has no step")
        if timeouts and not timeout_store_given:
            problems.append("timeouts are declared but build() was given no timeout_store")
        starting = graph.starting
        if not steps and not callbacks and not timeouts:
            problems.append("no step, callback or timeout: a workflow needs at least one")
        elif not starting:
            problems.append("no starting status: every status has a transition into it")
        if problems:
            raise InvalidWorkflow(self.name, problems)

        return WorkflowSpec(
            name=self.name,
            object_type=self.object_type,
            status_type=self.status_type,
            codec=codec_for(self.object_type),
            graph=graph,
            steps=MappingProxyType(steps),
            callbacks=MappingProxyType({k: tuple(v) for k, v in callbacks.items()}),
            timeouts=MappingProxyType({k: tuple(v) for k, v in timeouts.items()}),
            timeout_options=MappingProxyType(timeout_options),
            connectors=tuple(connectors),
            hooks=MappingProxyType(dict(self._hooks)),  # type: ignore[arg-type]
            default_start=self.status_type(starting[0]),
        )

    def _overrides(self, step_options: object) -> dict[int, Options]:
        if step_options is None:
            return {}
        if not isinstance(step_options, Mapping):
            raise InvalidInput("step_options", "a mapping of step from-status to conveyor.Options", step_options)
        found: dict[int, Options] = {}
        for status, options in step_options.items():
            problems: list[str] = []
            member = self._status("step_options", status, problems)
            if member is None:
                raise InvalidInput("step_options", f"keys that are {self.status_type.__name__} members", status)
            if not isinstance(options, Options):
                raise InvalidInput(f"step_options[{member.name}]", "a conveyor.Options", options)
            found[int(member)] = options
        return found

    def _status(self, where: str, value: object, problems: list[str]) -> S | None:
        enum_name = self.status_type.__name__
        if isinstance(value, enum.Enum) and not isinstance(value, self.status_type):
            problems.append(f"{where}: {value!r} is not a {enum_name}")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{where}: {value!r} is not a {enum_name}")
            return None
        try:
            member = self.status_type(value)
        except ValueError:
            problems.append(f"{where}: {value!r} is outside {enum_name}")
            return None
        if int(member) <= 0:
            problems.append(f"{where}: {member!r} is reserved (0 means 'no status'); use a positive value")
            return None
        return member

    def _statuses(
        self, where: str, source: object, targets: tuple[object, ...], problems: list[str]
    ) -> tuple[S | None, tuple[S, ...]]:
        checked_source = self._status(where, source, problems)
        checked_targets = []
        for target in targets:
            member = self._status(where, target, problems)
            if member is not None:
                checked_targets.append(member)
        if not targets:
            problems.append(f"{where}: declares no next status; give at least one")
        return checked_source, tuple(checked_targets)

    @staticmethod
    def _callable(where: str, field: str, value: object, problems: list[str]) -> None:
        if not callable(value):
            problems.append(f"{where}: {field} must be callable, got {value!r}")

    def build(
        self,
        streamer: EventStreamer,
        store: RecordStore,
        role_scheduler: RoleScheduler,
        *,
        timeout_store: TimeoutStore | None = None,
        clock: Clock | None = None,
        debug: bool = False,
        default_options: Options | None = None,
        outbox: bool = True,
        custom_delete: CustomDeleteFn[T, S] | None = None,
        pause_retry: timedelta | None = timedelta(hours=1),
        step_options: Mapping[S, Options] | None = None,
    ) -> Workflow[T, S]:
        """A runnable Workflow on these adapters. `outbox=False` leaves publishing the outbox to someone else;
        `pause_retry=None` stops paused runs from being resumed automatically; `step_options` as for `spec()`."""
        from conveyor._engine.workflow import Workflow

        spec = self.spec(timeout_store_given=timeout_store is not None, step_options=step_options)
        for field, value, kind in (
            ("streamer", streamer, "EventStreamer"),
            ("store", store, "RecordStore"),
            ("role_scheduler", role_scheduler, "RoleScheduler"),
        ):
            if value is None or not hasattr(value, "open"):
                raise InvalidInput(field, f"an {kind}", value)
        if pause_retry is not None and (not isinstance(pause_retry, timedelta) or pause_retry <= timedelta(0)):
            raise InvalidInput("pause_retry", "a positive timedelta or None", pause_retry)
        if default_options is not None and not isinstance(default_options, Options):
            raise InvalidInput("default_options", "a conveyor.Options", default_options)
        if custom_delete is not None and not callable(custom_delete):
            raise InvalidInput("custom_delete", "a callable taking the run", custom_delete)
        return Workflow(
            spec,
            streamer=streamer,
            store=store,
            role_scheduler=role_scheduler,
            timeout_store=timeout_store,
            clock=clock,
            debug=debug,
            default_options=default_options or Options(),
            outbox=outbox,
            custom_delete=custom_delete,
            pause_retry=pause_retry,
        )
