"""One process's adapters for the suites that run the engine (WorkflowSuite and its Client cases), and building a
workflow on them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from conveyor._core.ports import EventStreamer, RecordStore, RoleScheduler, TimeoutStore
from conveyor._engine.builder import Builder
from conveyor._engine.workflow import Workflow


class Adapters(NamedTuple):
    """One process's adapters. Two calls of the fixture stand for two processes on the same services."""

    streamer: EventStreamer
    store: RecordStore
    role_scheduler: RoleScheduler
    timeout_store: TimeoutStore


AdaptersFactory = Callable[[], Adapters]


def build_on(builder: Builder[Any, Any], adapters: Adapters, **kwargs: Any) -> Workflow[Any, Any]:
    return builder.build(
        adapters.streamer,
        adapters.store,
        adapters.role_scheduler,
        timeout_store=adapters.timeout_store,
        **kwargs,
    )
