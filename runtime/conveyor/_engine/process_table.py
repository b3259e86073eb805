"""A workflow's process table: which processes its definition makes (one per role, with the role names of the
reference), and their supervision: each process waits for its role, runs while it holds it, is restarted after
a back-off when it fails, and gives the role up when it is lost or the workflow stops.

The table is published (`Workflow.processes()`) so that whoever deploys a workflow (the worker, the operator's
Deployments) selects processes by kind, step and shard instead of making role names again; processes added from
outside the engine (the Kubernetes WorkflowRun mirror) join the same table and are supervised the same way."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from conveyor._core.ports import FencingRoleScheduler, Shard
from conveyor._core.runstate import RunState
from conveyor._engine import processes, roles
from conveyor._engine.options import OUTBOX_ERR_BACKOFF, Options
from conveyor._engine.roles import Process, ProcessInfo, ProcessKind
from conveyor._engine.runtime import Runtime
from conveyor._engine.stranded import StrandedCheck
from conveyor._engine.supervise import Stopping, until_lost
from conveyor.errors import InvalidInput

if TYPE_CHECKING:
    from conveyor._engine.workflow import Workflow

# The reference's process states (the workflow_process_states gauge).
STATE_SHUTDOWN, STATE_RUNNING, STATE_IDLE = 1, 2, 3
STATE_NAMES = {STATE_SHUTDOWN: "Shutdown", STATE_RUNNING: "Running", STATE_IDLE: "Idle"}


def _bind(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    return lambda: fn(*args)


def defined_processes(
    rt: Runtime[Any, Any], workflow: Workflow[Any, Any], *, outbox: bool, stranded: StrandedCheck
) -> list[Process]:
    """Every process the workflow's definition makes, with the options in force; `stranded` is the workflow's
    stranded-runs check."""
    spec, name = rt.spec, rt.spec.name
    found: list[Process] = []
    if outbox:
        found.append(
            Process(
                ProcessInfo(roles.outbox_role(name), "outbox-consumer", ProcessKind.OUTBOX_RELAY),
                lambda: processes.outbox_relay(rt, "outbox-consumer"),
                OUTBOX_ERR_BACKOFF.total_seconds(),
            )
        )
    for step in spec.steps.values():
        opts = rt.options(step.options)
        count = opts.parallel_count
        for k in range(1, count + 1):
            info = ProcessInfo(
                roles.step_role(name, int(step.status), k, count),
                roles.make_role(step.status.name, "consumer", k, "of", count),
                ProcessKind.STEP_CONSUMER,
                status=step.status,
                shard=Shard(k, count),
                fence_group=roles.step_group(name, int(step.status)),
            )
            body = _bind(processes.step_consumer, rt, step, info.shard, info.role, info.name)
            found.append(Process(info, body, opts.err_backoff))
    if rt.timeout_store is not None:
        for status_value, timeouts in spec.timeouts.items():
            status = rt.status(status_value)
            opts = rt.options(spec.timeout_options.get(status_value) or Options())
            poller = ProcessInfo(
                roles.timeout_role(name, status_value),
                roles.make_role(status.name, "timeout-consumer"),
                ProcessKind.TIMEOUT_POLLER,
                status=status,
            )
            body = _bind(processes.timeout_poller, rt, status, timeouts, poller.name)
            found.append(Process(poller, body, opts.err_backoff))
            inserter = ProcessInfo(
                roles.timeout_inserter_role(name, status_value),
                roles.make_role(status.name, "timeout-auto-inserter-consumer"),
                ProcessKind.TIMEOUT_INSERTER,
                status=status,
            )
            body = _bind(processes.timeout_inserter, rt, status, timeouts, inserter.role, inserter.name)
            found.append(Process(inserter, body, opts.err_backoff))
    for connector in spec.connectors:
        opts = rt.options(connector.options)
        count = opts.parallel_count
        for k in range(1, count + 1):
            role = roles.connector_role(connector.name, name, k, count)
            info = ProcessInfo(
                role,
                role,
                ProcessKind.CONNECTOR_CONSUMER,
                shard=Shard(k, count),
                fence_group=roles.connector_group(connector.name, name),
            )
            body = _bind(processes.connector_consumer, rt, workflow, connector, info.shard, role)
            found.append(Process(info, body, opts.err_backoff))
    defaults = rt.options(Options())
    for state, hook in spec.hooks.items():
        run_state = RunState(state)
        info = ProcessInfo(
            roles.hook_role(name, run_state),
            roles.make_role(run_state.label, "run-state-change-hook", "consumer"),
            ProcessKind.HOOK_CONSUMER,
        )
        body = _bind(processes.hook_consumer, rt, run_state, hook, info.role, info.name)
        found.append(Process(info, body, defaults.err_backoff))
    info = ProcessInfo(roles.delete_role(name), "delete-consumer", ProcessKind.DELETE_CONSUMER)
    found.append(Process(info, _bind(processes.delete_consumer, rt, info.role, info.name), defaults.err_backoff))
    if rt.pause_retry is not None:
        info = ProcessInfo(roles.paused_retry_role(name), "paused-records-retry-consumer", ProcessKind.PAUSED_RETRY)
        body = _bind(processes.paused_retry_consumer, rt, info.role, info.name)
        found.append(Process(info, body, defaults.err_backoff))
    info = ProcessInfo(roles.stranded_check_role(name), "stranded-runs-check", ProcessKind.STRANDED_CHECK)
    found.append(Process(info, stranded.run, defaults.err_backoff))
    return found


def fence(scheduler: object, table: list[Process]) -> None:
    """Tell a role scheduler that can fence (the Lease scheduler) which roles are shards of one group."""
    if not isinstance(scheduler, FencingRoleScheduler):
        return
    for process in table:
        info = process.info
        if info.fence_group is not None and info.shard is not None:
            scheduler.fence(info.role, group=info.fence_group, shards=info.shard.count)


class Supervisor:
    """The running processes of one workflow: a task per role, and each process's state."""

    def __init__(self, rt: Runtime[Any, Any]) -> None:
        self._rt = rt
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._states: dict[str, int] = {}

    def states(self) -> dict[str, str]:
        return {name: STATE_NAMES[value] for name, value in self._states.items()}

    def start(self, process: Process) -> None:
        if process.role in self._tasks:
            raise InvalidInput("role", "a role not already running", process.role)
        self._states[process.name] = STATE_IDLE
        self._tasks[process.role] = asyncio.create_task(self._supervise(process), name=process.role)

    async def cancel_all(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

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


def added_process(
    role: str,
    body: Callable[[], Awaitable[None]],
    *,
    name: str | None,
    kind: str,
    err_backoff: float,
) -> Process:
    """A process added from outside the engine (`Workflow.add_process`), checked."""
    if not isinstance(role, str) or not role or not role.isprintable():
        raise InvalidInput("role", "a non-empty printable role name", role)
    if not callable(body):
        raise InvalidInput("body", "a callable returning an awaitable", body)
    if not isinstance(kind, str) or not kind or kind == ProcessKind.STEP_CONSUMER:
        raise InvalidInput("kind", "a process kind other than step-consumer", kind)
    if isinstance(err_backoff, bool) or not isinstance(err_backoff, int | float) or err_backoff < 0:
        raise InvalidInput("err_backoff", "a number of seconds >= 0", err_backoff)
    return Process(ProcessInfo(role, name or role, kind), body, float(err_backoff))
