"""Role names, exactly as the reference makes them: each names one process of one workflow, and exactly one
holder at a time may act as it."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Awaitable, Callable

from conveyor._core.ports import Shard
from conveyor._core.runstate import RunState


def make_role(*parts: object) -> str:
    return "-".join(str(p) for p in parts).lower().replace(" ", "_")


def step_role(workflow: str, status: int, shard: int, shards: int) -> str:
    return make_role(workflow, status, "consumer", shard, "of", shards)


def step_group(workflow: str, status: int) -> str:
    """What every shard role of one step shares, whatever the shard count: shards of different counts of one
    group must never run at once (their partitions overlap)."""
    return make_role(workflow, status, "consumer")


def outbox_role(workflow: str) -> str:
    return make_role(workflow, "outbox", "consumer")


def timeout_role(workflow: str, status: int) -> str:
    return make_role(workflow, status, "timeout-consumer")


def timeout_inserter_role(workflow: str, status: int) -> str:
    return make_role(workflow, status, "timeout-auto-inserter-consumer")


def hook_role(workflow: str, state: RunState) -> str:
    return make_role(workflow, state.label, "run-state-change-hook", "consumer")


def delete_role(workflow: str) -> str:
    return make_role(workflow, "delete", "consumer")


def paused_retry_role(workflow: str) -> str:
    return make_role(workflow, "paused", "records", "retry", "consumer")


def stranded_check_role(workflow: str) -> str:
    """Ours (the reference has none): the process that counts the runs the workflow's code cannot move."""
    return make_role(workflow, "stranded", "runs", "check")


def connector_role(connector: str, workflow: str, shard: int, shards: int) -> str:
    return make_role(connector, "connector", "to", workflow, "consumer", shard, "of", shards)


def connector_group(connector: str, workflow: str) -> str:
    """As `step_group`, for a connector's shards: two shard counts of one connector must never consume at once."""
    return make_role(connector, "connector", "to", workflow, "consumer")


def schedule_role(workflow: str, foreign_id: str, spec: str) -> str:
    return make_role(workflow, foreign_id, "scheduler", spec)


def await_name(workflow: str, status: int, foreign_id: str) -> str:
    return make_role("await", workflow, status, foreign_id)


class ProcessKind(enum.StrEnum):
    """What a process does. A worker picks its processes by kind: one shard of a step consumer, or everything else
    (the system worker)."""

    STEP_CONSUMER = "step-consumer"
    OUTBOX_RELAY = "outbox-relay"
    TIMEOUT_POLLER = "timeout-poller"
    TIMEOUT_INSERTER = "timeout-inserter"
    CONNECTOR_CONSUMER = "connector-consumer"
    HOOK_CONSUMER = "hook-consumer"
    DELETE_CONSUMER = "delete-consumer"
    PAUSED_RETRY = "paused-retry"
    STRANDED_CHECK = "stranded-check"
    SCHEDULER = "scheduler"


@dataclasses.dataclass(frozen=True, slots=True)
class ProcessInfo:
    """One process of a workflow as the engine publishes it (`Workflow.processes()`): the role it holds, its name
    in the metrics, its kind, the status it consumes (steps, timeouts), its shard of the step's or connector's
    parallel count, and `fence_group`, shared by every shard role of one step (or connector) whatever their
    count: shards of two counts of one group must never run at once, as their partitions overlap."""

    role: str
    name: str
    kind: str
    status: enum.IntEnum | None = None
    shard: Shard | None = None
    fence_group: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Process:
    """One role's work: `body` runs while the role is held and is restarted after `err_backoff` if it fails."""

    info: ProcessInfo
    body: Callable[[], Awaitable[None]]
    err_backoff: float

    @property
    def role(self) -> str:
        return self.info.role

    @property
    def name(self) -> str:
        return self.info.name
