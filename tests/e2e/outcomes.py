"""What the example's code does with each of its sample orders, found by running the example's own workflow on the
in-memory adapters: the final status, the object, and the path of (run state, status) through its history. The
cluster must agree with the library, transition for transition."""

from __future__ import annotations

import asyncio
import functools
import importlib
import sys
from dataclasses import dataclass
from typing import Any

from tests.e2e.cluster import EXAMPLE


@dataclass(frozen=True)
class Outcome:
    final: str  # the final status's name
    object: dict[str, Any]
    path: tuple[tuple[int, int], ...]  # (run state, status) of each stored version, from version 1


def example() -> Any:
    """The example's code (examples/order_processing/orders/workflow.py), imported as the worker pods import it."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        return importlib.import_module("orders.workflow")
    finally:
        sys.path.remove(str(EXAMPLE))


def sample_objects() -> list[dict[str, Any]]:
    return [order.model_dump(mode="json") for order in example().sample_orders()]


@functools.cache
def outcomes() -> dict[str, Outcome]:
    """Sample order id -> what the example's code makes of it."""
    orders = example()
    from conveyor import RunState
    from conveyor.adapters.memory import MemoryRecordStore, MemoryRoleScheduler, MemoryStreamer

    async def run_all() -> dict[str, Outcome]:
        wf = orders.builder.build(MemoryStreamer(), MemoryRecordStore(), MemoryRoleScheduler())
        found: dict[str, Outcome] = {}
        async with wf:
            runs = {order.id: await wf.trigger(order.id, initial_value=order) for order in orders.sample_orders()}
            for order_id, run_id in runs.items():
                for _ in range(500):
                    run = await wf.get_run(run_id)
                    if run.run_state is RunState.COMPLETED:
                        break
                    await asyncio.sleep(0.01)
                assert run.run_state is RunState.COMPLETED, f"{order_id} did not complete in memory: {run}"
                history = await wf.history(run_id)
                found[order_id] = Outcome(
                    run.status.name,
                    run.object.model_dump(mode="json"),
                    tuple((int(h.run_state), int(h.status)) for h in history),
                )
        return found

    return asyncio.run(run_all())


def expected_outcomes() -> dict[str, tuple[str, dict[str, Any]]]:
    """Sample order id -> (final status name, object)."""
    return {order_id: (o.final, o.object) for order_id, o in outcomes().items()}
