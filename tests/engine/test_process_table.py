"""The process table a workflow publishes (`Workflow.processes()`): each process's role, kind, step and shard,
as a worker selects from them; processes added from outside the engine, supervised like the others; shard
fences given to a role scheduler that can fence; and the spec, frozen once built, with a deployment's step
options given to `build()` instead."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest

from conveyor import Builder, Options, ProcessKind
from conveyor._engine.roles import step_group, step_role
from conveyor.adapters.memory import (
    MemoryConnector,
    MemoryRecordStore,
    MemoryRoleScheduler,
    MemoryStreamer,
    MemoryTimeoutStore,
)
from conveyor.errors import InvalidInput, InvalidWorkflow
from tests.conftest import Start
from tests.engine._orders import Order, Status
from tests.helpers import until


def paid(run: object) -> Status:
    return Status.PAID


def sample() -> Builder[Order, Status]:
    b = Builder("table", Order, Status)
    b.add_step(Status.CREATED, paid, Status.PAID).with_options(parallel_count=2)
    b.add_step(Status.PAID, lambda run: Status.FULFILLED, Status.FULFILLED)
    b.add_timeout(Status.FULFILLED, lambda run, now: None, lambda run, now: Status.EXPIRED, Status.EXPIRED)
    b.add_connector("feed", MemoryConnector([]), lambda wf, event: None).with_options(parallel_count=3)
    b.on_complete(lambda run: None)
    return b


class RecordingFences(MemoryRoleScheduler):
    """The memory scheduler, also declaring the fencing capability; records what it is told."""

    def __init__(self) -> None:
        super().__init__()
        self.fences: dict[str, tuple[str, int]] = {}

    def fence(self, role: str, *, group: str, shards: int) -> None:
        self.fences[role] = (group, shards)

    def fenced(self, role: str) -> str | None:
        return None


def test_every_process_is_published_with_its_kind_step_and_shard() -> None:
    wf = sample().build(
        MemoryStreamer(), MemoryRecordStore(), MemoryRoleScheduler(), timeout_store=MemoryTimeoutStore()
    )
    table = wf.processes()
    assert [p.role for p in table] == wf.roles()
    steps = [p for p in table if p.kind == ProcessKind.STEP_CONSUMER]
    assert [(p.role, p.status, p.shard and (p.shard.index, p.shard.count)) for p in steps] == [
        (step_role("table", 1, 1, 2), Status.CREATED, (1, 2)),
        (step_role("table", 1, 2, 2), Status.CREATED, (2, 2)),
        (step_role("table", 2, 1, 1), Status.PAID, (1, 1)),
    ]
    assert {p.fence_group for p in steps} == {step_group("table", 1), step_group("table", 2)}
    assert {p.kind for p in table} - {ProcessKind.STEP_CONSUMER} == {
        ProcessKind.OUTBOX_RELAY,
        ProcessKind.TIMEOUT_POLLER,
        ProcessKind.TIMEOUT_INSERTER,
        ProcessKind.CONNECTOR_CONSUMER,
        ProcessKind.HOOK_CONSUMER,
        ProcessKind.DELETE_CONSUMER,
        ProcessKind.PAUSED_RETRY,
        ProcessKind.STRANDED_CHECK,
    }
    connectors = [p for p in table if p.kind == ProcessKind.CONNECTOR_CONSUMER]
    assert [p.shard.index for p in connectors if p.shard] == [1, 2, 3]
    with pytest.raises(dataclasses.FrozenInstanceError):
        table[0].role = "another"  # type: ignore[misc]


def test_a_scheduler_that_can_fence_is_given_every_shard_role_and_its_group() -> None:
    roles = RecordingFences()
    wf = sample().build(MemoryStreamer(), MemoryRecordStore(), roles, timeout_store=MemoryTimeoutStore())
    sharded = {p.role: (p.fence_group, p.shard.count) for p in wf.processes() if p.shard is not None}
    assert roles.fences == sharded and len(sharded) == 6


async def test_an_added_process_is_held_supervised_and_restarted_like_the_others(start: Start) -> None:
    attempts: list[int] = []
    ran = asyncio.Event()

    async def body() -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")
        ran.set()
        await asyncio.Event().wait()

    wf = await start(sample(), run=False)
    info = wf.add_process("table-mirror-consumer", body, name="mirror", kind="mirror", err_backoff=0.01)
    assert info.role in wf.roles() and info in wf.processes() and info.kind == "mirror"
    with pytest.raises(InvalidInput, match="role"):
        wf.add_process("table-mirror-consumer", body)
    with pytest.raises(InvalidInput, match="kind"):
        wf.add_process("table-other", body, kind=ProcessKind.STEP_CONSUMER)
    await wf.run(roles=[info.role])
    await asyncio.wait_for(ran.wait(), 5)
    assert attempts == [1, 2]
    await until(lambda: wf.states() == {"mirror": "Running"})
    with pytest.raises(InvalidInput, match="add_process"):
        wf.add_process("table-late", body)


def test_the_built_spec_is_frozen() -> None:
    wf = sample().build(
        MemoryStreamer(), MemoryRecordStore(), MemoryRoleScheduler(), timeout_store=MemoryTimeoutStore()
    )
    spec = wf.spec
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "renamed"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.steps[1].options = Options(parallel_count=9)  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.steps[9] = spec.steps[1]  # type: ignore[index]
    with pytest.raises(TypeError):
        del spec.hooks[5]  # type: ignore[attr-defined]
    assert isinstance(spec.connectors, tuple) and isinstance(spec.timeouts[4], tuple)


def test_step_options_given_to_build_go_over_the_codes() -> None:
    b = sample()
    wf = b.build(
        MemoryStreamer(),
        MemoryRecordStore(),
        MemoryRoleScheduler(),
        timeout_store=MemoryTimeoutStore(),
        step_options={Status.CREATED: Options(parallel_count=3, err_backoff=timedelta(seconds=7))},
    )
    created = wf.spec.steps[Status.CREATED].options
    assert (created.parallel_count, created.err_backoff) == (3, timedelta(seconds=7))
    assert len([p for p in wf.processes() if p.status is Status.CREATED]) == 3
    with pytest.raises(InvalidWorkflow, match="has no step"):
        b.build(MemoryStreamer(), MemoryRecordStore(), MemoryRoleScheduler(), step_options={Status.EXPIRED: Options()})
    with pytest.raises(InvalidInput, match="step_options"):
        b.build(MemoryStreamer(), MemoryRecordStore(), MemoryRoleScheduler(), step_options={Status.PAID: 3})  # type: ignore[dict-item]
