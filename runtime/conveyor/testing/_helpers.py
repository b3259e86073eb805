"""Helpers for testing your own workflows quickly, in the spirit of the reference's testing.go: wait for a run to
reach a status, fire a callback when it gets there, wait for a timeout to be scheduled, or build a Run by hand to
unit-test one step function."""

from __future__ import annotations

import asyncio
import enum
import time
import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar

import pydantic

from conveyor._core.records import Meta
from conveyor._core.runstate import RunState
from conveyor._engine.run import Run
from conveyor._engine.workflow import Workflow
from conveyor.errors import RecordNotFound

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

_POLL = 0.005


async def await_status(
    wf: Workflow[T, S], foreign_id: str, status: S, *, run_id: str | None = None, timeout: float = 5.0
) -> Run[T, S]:
    """Wait (in real time, at most `timeout` s) until the foreign id's latest run (or `run_id`) has been at
    `status`, even if it has moved on since; returns the run as it was then."""
    deadline = time.monotonic() + timeout
    while True:
        found = await _find(wf, foreign_id, status, run_id)
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{wf.name}: {foreign_id!r} did not reach {status!r} within {timeout}s")
        await asyncio.sleep(_POLL)


async def _find(wf: Workflow[T, S], foreign_id: str, status: S, run_id: str | None) -> Run[T, S] | None:
    try:
        latest = await wf.store.latest(wf.name, foreign_id) if run_id is None else await wf.store.lookup(run_id)
    except RecordNotFound:
        return None
    for version in await wf.history(latest.run_id):
        if version.status == status:
            return version
    return None


async def require(wf: Workflow[T, S], foreign_id: str, status: S, expected: T, *, timeout: float = 5.0) -> Run[T, S]:
    """await_status, then assert the run's object at that status equals `expected`."""
    run = await await_status(wf, foreign_id, status, timeout=timeout)
    codec = wf.spec.codec
    normalised = codec.decode(codec.encode(expected))
    assert run.object == normalised, f"{wf.name}/{foreign_id} at {status!r}: {run.object!r} != {normalised!r}"
    return run


async def trigger_callback_on(
    wf: Workflow[T, S], foreign_id: str, status: S, payload: Any, *, timeout: float = 5.0
) -> bool:
    """Wait until the run is at `status` now, then call `wf.callback` with `payload` (bytes as given; a pydantic
    model or anything JSON-serialisable is sent as JSON)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            latest = await wf.store.latest(wf.name, foreign_id)
            if latest.status == int(status):
                break
        except RecordNotFound:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{wf.name}: {foreign_id!r} was not at {status!r} within {timeout}s")
        await asyncio.sleep(_POLL)
    return await wf.callback(foreign_id, status, _to_bytes(payload))


def _to_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, pydantic.BaseModel):
        return payload.model_dump_json().encode()
    return pydantic.TypeAdapter(type(payload)).dump_json(payload)


async def await_timeout_insert(
    wf: Workflow[T, S], foreign_id: str, run_id: str, status: S, *, timeout: float = 5.0
) -> None:
    """Wait until a timeout of `status` is scheduled for the run (then move your FakeClock past it)."""
    store = wf.timeout_store
    if store is None:
        raise ValueError("wf: expected a workflow built with a timeout_store")
    deadline = time.monotonic() + timeout
    while True:
        for item in await store.list(wf.name):
            if item.run_id == run_id and item.foreign_id == foreign_id and item.status == int(status):
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{wf.name}: no timeout of {status!r} was scheduled for {run_id} within {timeout}s")
        await asyncio.sleep(_POLL)


def new_testing_run(
    object: T,
    status: S,
    *,
    workflow_name: str = "test",
    foreign_id: str = "test",
    run_id: str | None = None,
    run_state: RunState = RunState.RUNNING,
    now: datetime | None = None,
) -> Run[T, S]:
    """A Run to hand straight to a step function in a unit test: `assert await step(run) is Status.NEXT`."""
    when = now or datetime.now(UTC)
    return Run(
        workflow_name=workflow_name,
        foreign_id=foreign_id,
        run_id=run_id or str(uuid.uuid4()),
        run_state=run_state,
        status=status,
        object=object,
        created_at=when,
        updated_at=when,
        meta=Meta(status_description=status.name, version=1),
    )
