"""Workflow: a built workflow's public face. `run()` starts its processes (each behind its role), `stop()` drains
and stops them; the rest is the API users call: trigger, wait_for, get_run, callback, schedule and run controls."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import re
import sys
import uuid
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Generic, TypeVar

from croniter import croniter

from conveyor._core.clock import Clock, SystemClock
from conveyor._core.ports import EventStreamer, RecordStore, RoleScheduler, Shard, TimeoutStore
from conveyor._core.records import Meta, Record, run_state_change_topic, topic
from conveyor._core.runstate import RunState
from conveyor._engine import processes, roles
from conveyor._engine.options import OUTBOX_ERR_BACKOFF, Options
from conveyor._engine.roles import Process
from conveyor._engine.run import Run
from conveyor._engine.runtime import Runtime
from conveyor._engine.spec import CustomDeleteFn, WorkflowSpec
from conveyor._engine.supervise import Stopping, until_lost
from conveyor._engine.visualise import mermaid
from conveyor.errors import (
    InvalidInput,
    InvalidStatus,
    InvalidTransition,
    RecordNotFound,
    VersionConflict,
    WorkflowInProgress,
    WorkflowNotRunning,
)

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

_CONTROL_ATTEMPTS = 10
_EVERY = re.compile(r"^@every\s+(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")

# The reference's process states (the workflow_process_states gauge).
STATE_SHUTDOWN, STATE_RUNNING, STATE_IDLE = 1, 2, 3


class Workflow(Generic[T, S]):
    """Made by `Builder.build()`. Use as `async with wf:` or `await wf.run()` ... `await wf.stop()`."""

    def __init__(
        self,
        spec: WorkflowSpec[T, S],
        *,
        streamer: EventStreamer,
        store: RecordStore,
        role_scheduler: RoleScheduler,
        timeout_store: TimeoutStore | None,
        clock: Clock | None,
        debug: bool,
        default_options: Options,
        outbox: bool,
        custom_delete: CustomDeleteFn[T, S] | None,
        pause_retry: timedelta | None,
    ) -> None:
        self._spec = spec
        self._rt: Runtime[T, S] = Runtime(
            spec,
            streamer=streamer,
            store=store,
            role_scheduler=role_scheduler,
            timeout_store=timeout_store,
            clock=clock or SystemClock(),
            debug=debug,
            default_options=default_options,
            custom_delete=custom_delete,
            pause_retry=pause_retry,
        )
        self._outbox = outbox
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._states: dict[str, int] = {}
        self._running = False
        self._opened: list[Any] = []

    # -- identity and introspection ------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._spec.name

    @property
    def spec(self) -> WorkflowSpec[T, S]:
        return self._spec

    @property
    def clock(self) -> Clock:
        return self._rt.clock

    @property
    def store(self) -> RecordStore:
        return self._rt.store

    @property
    def timeout_store(self) -> TimeoutStore | None:
        return self._rt.timeout_store

    @property
    def running(self) -> bool:
        return self._running

    def roles(self) -> list[str]:
        """Every role this workflow's processes hold (schedules add theirs when started)."""
        return [p.role for p in self._processes()]

    def states(self) -> dict[str, str]:
        """Process name -> Idle (waiting for its role), Running or Shutdown."""
        names = {STATE_SHUTDOWN: "Shutdown", STATE_RUNNING: "Running", STATE_IDLE: "Idle"}
        return {k: names[v] for k, v in self._states.items()}

    def mermaid(self) -> str:
        """The workflow's state diagram as mermaid text."""
        return mermaid(self._spec)

    # -- life cycle ----------------------------------------------------------------------------------------------

    async def run(self, *, roles: Collection[str] | None = None) -> None:
        """Open the adapters and start the processes (only those of `roles` if given; `roles=()` starts none, for
        a process that only triggers and controls runs). Returns once they are started."""
        if self._running:
            return
        every = {p.role: p for p in self._processes()}
        chosen = list(every.values())
        if roles is not None:
            unknown = [r for r in roles if r not in every]
            if unknown:
                raise InvalidInput("roles", f"roles of workflow {self.name!r} ({', '.join(every)})", unknown)
            chosen = [every[r] for r in roles]
        await self._open_adapters()
        self._rt.drain.stopping.clear()
        self._running = True
        for process in chosen:
            self._start(process)
        self._rt.decisions.log("workflow running", None, processes=len(chosen))

    async def _open_adapters(self) -> None:
        rt = self._rt
        adapters: list[Any] = [rt.store, rt.streamer, rt.role_scheduler]
        if rt.timeout_store is not None:
            adapters.append(rt.timeout_store)
        try:
            for adapter in adapters:
                if adapter not in self._opened:
                    await adapter.open()
                    self._opened.append(adapter)
        except BaseException:
            await self._close_adapters()
            raise

    async def _close_adapters(self) -> None:
        while self._opened:
            adapter = self._opened.pop()
            with contextlib.suppress(Exception):
                await adapter.close()

    async def stop(self, *, grace: float = 10.0) -> None:
        """Let busy processes finish their current event (up to `grace` seconds), release every role, close
        the adapters."""
        if not self._running:
            return
        drain = self._rt.drain
        drain.stopping.set()
        await drain.wait_idle(grace)
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._running = False
        await self._close_adapters()
        self._rt.decisions.log("workflow stopped", None)

    async def __aenter__(self) -> Workflow[T, S]:
        await self.run()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _start(self, process: Process) -> None:
        if process.role in self._tasks:
            raise InvalidInput("role", "a role not already running", process.role)
        self._states[process.name] = STATE_IDLE
        self._tasks[process.role] = asyncio.create_task(self._supervise(process), name=process.role)

    def _set_state(self, process: Process, state: int) -> None:
        self._states[process.name] = state
        self._rt.metrics.state(process.name, state)

    async def _supervise(self, process: Process) -> None:
        """Hold the role, run the process, restart it after a back-off if it fails, give the role up if lost."""
        rt = self._rt
        try:
            while not rt.drain.stopping.is_set():
                self._set_state(process, STATE_IDLE)
                # 0 while waiting for the role, so a standby's roles show on its /metrics as not held.
                rt.metrics.role_held(process.role, False)
                try:
                    async with rt.role_scheduler.hold(process.role) as lease:
                        rt.metrics.role_held(process.role, True)
                        self._set_state(process, STATE_RUNNING)
                        rt.decisions.log("role acquired", None, role=process.role)
                        try:
                            lost = await until_lost(process.body(), lease)
                        finally:
                            rt.metrics.role_held(process.role, False)
                        if lost:
                            rt.decisions.log("role lost: process stopped", None, role=process.role)
                except Stopping:
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    rt.metrics.error(process.name)
                    rt.decisions.process_error(
                        "process failed, restarting after back-off", exc, process.name, role=process.role
                    )
                    try:
                        await rt.drain.sleep(rt.clock.sleep, process.err_backoff)
                    except Stopping:
                        return
        finally:
            self._set_state(process, STATE_SHUTDOWN)

    def _processes(self) -> list[Process]:
        rt, spec, name = self._rt, self._spec, self._spec.name
        found: list[Process] = []
        if self._outbox:
            found.append(
                Process(
                    roles.outbox_role(name),
                    "outbox-consumer",
                    lambda: processes.outbox_relay(rt, "outbox-consumer"),
                    OUTBOX_ERR_BACKOFF.total_seconds(),
                    system=True,
                )
            )
        for step in spec.steps.values():
            opts = rt.options(step.options)
            count = opts.parallel_count
            for k in range(1, count + 1):
                role = roles.step_role(name, int(step.status), k, count)
                process_name = roles.make_role(step.status.name, "consumer", k, "of", count)
                found.append(
                    Process(
                        role,
                        process_name,
                        _bind(processes.step_consumer, rt, step, Shard(k, count), role, process_name),
                        opts.err_backoff,
                    )
                )
        if rt.timeout_store is not None:
            for status_value, timeouts in spec.timeouts.items():
                status = rt.status(status_value)
                opts = rt.options(spec.timeout_options.get(status_value) or Options())
                role = roles.timeout_role(name, status_value)
                pname = roles.make_role(status.name, "timeout-consumer")
                found.append(
                    Process(
                        role,
                        pname,
                        _bind(processes.timeout_poller, rt, status, timeouts, pname),
                        opts.err_backoff,
                    )
                )
                role = roles.timeout_inserter_role(name, status_value)
                iname = roles.make_role(status.name, "timeout-auto-inserter-consumer")
                found.append(
                    Process(
                        role,
                        iname,
                        _bind(processes.timeout_inserter, rt, status, timeouts, role, iname),
                        opts.err_backoff,
                    )
                )
        for connector in spec.connectors:
            opts = rt.options(connector.options)
            count = opts.parallel_count
            for k in range(1, count + 1):
                role = roles.connector_role(connector.name, name, k, count)
                found.append(
                    Process(
                        role,
                        role,
                        _bind(processes.connector_consumer, rt, self, connector, Shard(k, count), role),
                        opts.err_backoff,
                        system=True,
                    )
                )
        defaults = rt.options(Options())
        for state, hook in spec.hooks.items():
            run_state = RunState(state)
            role = roles.hook_role(name, run_state)
            pname = roles.make_role(run_state.label, "run-state-change-hook", "consumer")
            found.append(
                Process(
                    role,
                    pname,
                    _bind(processes.hook_consumer, rt, run_state, hook, role, pname),
                    defaults.err_backoff,
                    system=True,
                )
            )
        role = roles.delete_role(name)
        found.append(
            Process(
                role,
                "delete-consumer",
                _bind(processes.delete_consumer, rt, role, "delete-consumer"),
                defaults.err_backoff,
                system=True,
            )
        )
        if rt.pause_retry is not None:
            role = roles.paused_retry_role(name)
            pname = "paused-records-retry-consumer"
            found.append(
                Process(
                    role,
                    pname,
                    _bind(processes.paused_retry_consumer, rt, role, pname),
                    defaults.err_backoff,
                    system=True,
                )
            )
        return found

    def _require_running(self, what: str) -> None:
        if not self._running:
            raise WorkflowNotRunning(f"{what} needs the workflow {self.name!r} running (`async with wf:` or run())")

    # -- the API -------------------------------------------------------------------------------------------------

    async def trigger(
        self,
        foreign_id: str,
        *,
        initial_value: T | None = None,
        start_at: S | None = None,
        run_id: str | None = None,
    ) -> str:
        """Start a run for `foreign_id` and return its run id. WorkflowInProgress if one is still in progress.

        With `run_id` the trigger is idempotent: if this workflow already has that run for `foreign_id` (a retried
        trigger, whatever the run's state now), its id is returned and nothing is created; InvalidInput if the id
        belongs to another workflow or foreign id."""
        self._require_running("trigger")
        rt = self._rt
        _check_foreign_id(foreign_id)
        if run_id is not None:
            _check_run_id(run_id)
        status = self._start_status(start_at)
        value = (
            rt.spec.codec.coerce(initial_value, "initial_value") if initial_value is not None else self._zero_value()
        )
        now = rt.clock.now()
        given = run_id is not None
        run_id = run_id if run_id is not None else str(uuid.uuid4())
        record = Record(
            self.name,
            foreign_id,
            run_id,
            RunState.INITIATED,
            int(status),
            rt.spec.codec.encode(value),
            now,
            now,
            Meta(status_description=status.name, version=1, trace_origin=_caller()),
        )
        try:
            await rt.store.store(record, expected_version=None)
        except (VersionConflict, WorkflowInProgress):
            # A store refuses a run id it already has (with either error when that run is still in progress).
            if not given or not await self._already_triggered(run_id, foreign_id):
                raise
            rt.decisions.log("trigger repeated: run exists", record)
            return run_id
        rt.metrics.run_state_change(RunState.UNKNOWN.label, RunState.INITIATED.label)
        rt.decisions.log("triggered run", record)
        # The first step may start at once if its consumer runs here (its event still follows; see `handoff`).
        rt.handoff.offer(record)
        return run_id

    async def _already_triggered(self, run_id: str, foreign_id: str) -> bool:
        """True if `run_id` is this workflow's run for `foreign_id`; InvalidInput if it is someone else's."""
        try:
            existing = await self._rt.store.lookup(run_id)
        except RecordNotFound:
            return False
        if existing.workflow_name != self.name or existing.foreign_id != foreign_id:
            raise InvalidInput(
                "run_id",
                f"an id not used by another run (it is a run of workflow {existing.workflow_name!r} for foreign id "
                f"{existing.foreign_id!r})",
                run_id,
            )
        return True

    def _zero_value(self) -> T:
        try:
            return self._spec.object_type()
        except Exception as exc:
            raise InvalidInput(
                "initial_value",
                f"a {self._spec.object_type.__name__} (it cannot be made without arguments: {exc})",
            ) from None

    def _start_status(self, start_at: object) -> S:
        if start_at is None:
            return self._spec.default_start
        member = self._member("start_at", start_at)
        consumed = set(self._spec.steps) | set(self._spec.callbacks) | set(self._spec.timeouts)
        if int(member) not in consumed:
            raise InvalidStatus("start_at", "a status that a step, callback or timeout consumes", member)
        return member

    def _member(self, field: str, value: object) -> S:
        status_type = self._spec.status_type
        if isinstance(value, enum.Enum) and not isinstance(value, status_type):
            raise InvalidStatus(field, f"a {status_type.__name__}", value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidStatus(field, f"a {status_type.__name__}", value)
        try:
            member = status_type(value)
        except ValueError:
            raise InvalidStatus(field, f"a {status_type.__name__}", value) from None
        if not self._spec.graph.is_valid(int(member)):
            raise InvalidStatus(field, f"a status of workflow {self.name!r}", member)
        return member

    async def get_run(self, run_id: str) -> Run[T, S]:
        """The run's current state. RecordNotFound if this workflow has no such run."""
        self._require_running("get_run")
        return self._rt.to_run(await self._record(run_id))

    async def _record(self, run_id: str) -> Record:
        if not isinstance(run_id, str) or not run_id:
            raise InvalidInput("run_id", "a non-empty string", run_id)
        record = await self._rt.store.lookup(run_id)
        if record.workflow_name != self.name:
            raise RecordNotFound(f"workflow {self.name!r} has no run {run_id!r}")
        return record

    async def history(self, run_id: str) -> list[Run[T, S]]:
        """Every stored version of the run, oldest first."""
        self._require_running("history")
        await self._record(run_id)
        return [self._rt.to_run(r) for r in await self._rt.store.history(run_id)]

    async def wait_for(self, foreign_id: str, run_id: str, status: S, *, timeout: float | None = None) -> Run[T, S]:
        """Wait until the run has reached `status` (at once if it already has) and return it as it was there;
        the built-in TimeoutError if `timeout` seconds pass first."""
        self._require_running("wait_for")
        member = self._member("status", status)
        _check_foreign_id(foreign_id)
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0):
            raise InvalidInput("timeout", "a number of seconds >= 0 or None", timeout)
        rt = self._rt
        # Terminal statuses complete the run, and completions go to the run-state-change topic.
        watched = (
            run_state_change_topic(self.name)
            if self._spec.graph.is_terminal(int(member))
            else topic(self.name, int(member))
        )
        name = f"{roles.await_name(self.name, int(member), foreign_id)}-{uuid.uuid4().hex[:12]}"
        async with asyncio.timeout(timeout):
            receiver = await rt.streamer.receiver(watched, name, from_latest=True)
            try:
                # The receiver exists before this look: a change after it is seen by the receiver.
                record = await self._record(run_id)
                if record.foreign_id != foreign_id:
                    raise RecordNotFound(f"run {run_id!r} is not a run of foreign id {foreign_id!r}")
                reached = await self._reached(run_id, int(member))
                while reached is None:
                    event = await receiver.recv()
                    await receiver.ack(event)
                    if event.run_id == run_id and event.type == int(member):
                        reached = await self._reached(run_id, int(member))
            finally:
                await receiver.close()
        return rt.to_run(reached)

    async def _reached(self, run_id: str, status: int) -> Record | None:
        """The latest stored version of the run at `status`, if it ever got there."""
        for version in reversed(await self._rt.store.history(run_id)):
            if version.status == status:
                return version
        return None

    async def callback(self, foreign_id: str, status: S, payload: bytes) -> bool:
        """Hand `payload` to the callbacks of `status` for the foreign id's latest run. True if a callback moved
        the run on; False if the run was not at `status`, was stopped, or changed meanwhile."""
        self._require_running("callback")
        member = self._member("status", status)
        _check_foreign_id(foreign_id)
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise InvalidInput("payload", "bytes", type(payload).__name__)
        callbacks = self._spec.callbacks.get(int(member))
        if not callbacks:
            raise InvalidStatus("status", "a status with a callback", member)
        rt = self._rt
        process = roles.make_role(member.name, "callback")
        applied = False
        for spec in callbacks:
            before = await rt.store.latest(self.name, foreign_id)
            if before.status != int(member) or before.run_state.stopped():
                rt.decisions.log("callback skipped: run not at its status", before)
                continue
            run = rt.to_run(before, processing=True)
            result = await rt.call(spec.fn, run, bytes(payload))
            after = rt.decide(before, run, result, spec.destinations, f"callback of {member.name}")
            if after is None:
                continue
            applied = await rt.commit(before, after, process) or applied
        return applied

    async def schedule(
        self,
        foreign_id: str,
        cron_spec: str,
        *,
        initial_value: T | None = None,
        filter: Callable[[], Any] | None = None,
    ) -> str:
        """Trigger a run for `foreign_id` on a cron schedule (five-field cron, @hourly-style names, or
        `@every 1h30m`), skipping a slot when a run is still in progress or `filter()` says no. Returns the
        schedule's role."""
        self._require_running("schedule")
        _check_foreign_id(foreign_id)
        next_after = _parse_schedule(cron_spec)
        value = self._rt.spec.codec.coerce(initial_value, "initial_value") if initial_value is not None else None
        if filter is not None and not callable(filter):
            raise InvalidInput("filter", "a callable returning bool", filter)
        role = roles.schedule_role(self.name, foreign_id, cron_spec)
        process_name = roles.make_role(foreign_id, "scheduler", cron_spec)
        self._start(
            Process(
                role,
                process_name,
                _bind(processes.scheduler, self._rt, self, foreign_id, next_after, value, filter),
                self._rt.options(Options()).err_backoff,
                system=True,
            )
        )
        return role

    async def pause(self, run_id: str, reason: str = "") -> Run[T, S]:
        return await self._control(run_id, RunState.PAUSED, reason)

    async def resume(self, run_id: str) -> Run[T, S]:
        return await self._control(run_id, RunState.RUNNING, "")

    async def cancel(self, run_id: str, reason: str = "") -> Run[T, S]:
        return await self._control(run_id, RunState.CANCELLED, reason)

    async def delete_data(self, run_id: str, reason: str = "") -> Run[T, S]:
        """Request deletion of the run's data (it must be completed, cancelled or already deleted); the delete
        process scrubs it (with custom_delete, if given) and marks the run DATA_DELETED."""
        return await self._control(run_id, RunState.REQUESTED_DATA_DELETED, reason)

    async def _control(self, run_id: str, target: RunState, reason: str) -> Run[T, S]:
        self._require_running(target.name.lower())
        if not isinstance(reason, str):
            raise InvalidInput("reason", "a string", reason)
        rt = self._rt
        for _ in range(_CONTROL_ATTEMPTS):
            before = await self._record(run_id)
            if not before.run_state.can_become(target):
                raise InvalidTransition(run_id, before.run_state.name, target.name)
            after = rt.next_record(before, status=before.status, run_state=target, object=before.object, reason=reason)
            if await rt.commit(before, after, f"api-{target.name.lower()}", as_stored=True):
                return rt.to_run(after)
        raise VersionConflict(run_id, before.meta.version, None)


def _bind(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    return lambda: fn(*args)


def _check_foreign_id(foreign_id: object) -> None:
    # NUL and lone surrogates: a memory store would keep them, Postgres cannot; refused alike in every store.
    if not isinstance(foreign_id, str) or not foreign_id or len(foreign_id) > 512 or not _is_text(foreign_id):
        raise InvalidInput(
            "foreign_id", "a non-empty string of at most 512 characters (no NUL, no lone surrogate)", foreign_id
        )


def _is_text(value: str) -> bool:
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_run_id(run_id: object) -> None:
    if not isinstance(run_id, str) or not run_id or len(run_id) > 128 or not run_id.isprintable():
        raise InvalidInput("run_id", "a non-empty string of at most 128 printable characters", run_id)


def _caller() -> str:
    """Where the run was triggered from (file:line of the first frame outside conveyor, asyncio and the standard
    library's plumbing that may sit between, such as an async context manager)."""
    frame = sys._getframe(1)
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if not module.startswith(("conveyor.", "asyncio", "concurrent.", "contextlib", "functools", "threading")):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return ""


def _parse_schedule(spec: object) -> Callable[[datetime], datetime]:
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidInput("cron_spec", "a cron expression such as '*/5 * * * *', '@hourly' or '@every 1h'", spec)
    text = spec.strip()
    every = _EVERY.match(text)
    if text.startswith("@every"):
        if every is None or not any(every.groups()):
            raise InvalidInput("cron_spec", "'@every' followed by a duration such as 1h30m, 5m or 10s", spec)
        hours, minutes, seconds = (int(g or 0) for g in every.groups())
        period = timedelta(hours=hours, minutes=minutes, seconds=seconds)
        if period <= timedelta(0):
            raise InvalidInput("cron_spec", "a positive @every duration", spec)
        return lambda last: last + period
    if not croniter.is_valid(text):
        raise InvalidInput("cron_spec", "a valid cron expression such as '*/5 * * * *' or '@daily'", spec)

    def next_after(last: datetime) -> datetime:
        result: datetime = croniter(text, last).get_next(datetime)
        return result

    return next_after
