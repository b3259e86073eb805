"""Shared fixtures: fresh in-memory adapters per test, and a way to build and run a workflow on them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from enum import IntEnum
from typing import Any, Protocol, TypeVar

import pytest

from conveyor import Builder, Workflow
from conveyor.adapters.memory import (
    MemoryRecordStore,
    MemoryRoleScheduler,
    MemoryStreamer,
    MemoryTimeoutStore,
)
from conveyor.testing import FakeClock

pytest_plugins = ["tests.services"]


class Memory:
    def __init__(self) -> None:
        self.streamer = MemoryStreamer()
        self.store = MemoryRecordStore()
        self.roles = MemoryRoleScheduler()
        self.timeouts = MemoryTimeoutStore()


@pytest.fixture
def memory() -> Memory:
    return Memory()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


T = TypeVar("T")
S = TypeVar("S", bound=IntEnum)


class Start(Protocol):
    # Typed so the Workflow a test gets back keeps its object and status types, and misuse of it stays an error.
    async def __call__(self, builder: Builder[T, S], *, run: bool = True, **kwargs: Any) -> Workflow[T, S]: ...


@pytest.fixture
async def start(memory: Memory) -> AsyncIterator[Start]:
    """`wf = await start(builder, clock=..., **build_kwargs)`: build on the shared memory adapters and run it;
    every workflow started is stopped at the end of the test."""
    started: list[Workflow[Any, Any]] = []

    async def _start(builder: Builder[Any, Any], *, run: bool = True, **kwargs: Any) -> Workflow[Any, Any]:
        kwargs.setdefault("timeout_store", memory.timeouts)
        wf = builder.build(memory.streamer, memory.store, memory.roles, **kwargs)
        if run:
            await wf.run()
        started.append(wf)
        return wf

    yield _start
    for wf in started:
        await wf.stop(grace=1)
