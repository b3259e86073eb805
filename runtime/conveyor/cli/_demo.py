"""`conveyor demo`: a workflow on the in-memory adapters, with every transition of every run printed as it
happens."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from conveyor._engine.builder import Builder
from conveyor.adapters.memory import (
    MemoryRecordStore,
    MemoryRoleScheduler,
    MemoryStreamer,
    MemoryTimeoutStore,
)

# What `conveyor demo` and `conveyor ui --demo` run: the order-processing example, shipped in the package
# (`_demo_orders.py` is examples/order_processing/orders/workflow.py, linked, so there is one copy; a wheel holds
# the file itself), so both demos work wherever conveyor is installed, not only in a checkout.
DEMO_ENTRYPOINT = "conveyor.cli._demo_orders:builder"


async def run_demo(
    builder: Builder[Any, Any],
    entrypoint: str,
    *,
    runs: int | None,
    timeout: float,
    debug: bool,
    out: Callable[[str], None],
) -> bool:
    """True when every run finished within `timeout` seconds."""
    import importlib

    module = importlib.import_module(entrypoint.partition(":")[0])
    samples = getattr(module, "sample_orders", None)
    objects: list[Any] = list(samples()) if callable(samples) else []
    count = runs if runs is not None else (len(objects) or 3)
    store = MemoryRecordStore()
    wf = builder.build(MemoryStreamer(), store, MemoryRoleScheduler(), timeout_store=MemoryTimeoutStore(), debug=debug)
    out(f"workflow {wf.name}: {len(wf.roles())} roles on the in-memory adapters")
    async with wf:
        started = wf.clock.now()
        run_ids: dict[str, str] = {}
        for i in range(count):
            value = objects[i % len(objects)] if objects else None
            foreign_id = str(getattr(value, "id", "") or f"run-{i + 1}")
            if foreign_id in run_ids:
                foreign_id = f"{foreign_id}-{i + 1}"
            run_ids[foreign_id] = await wf.trigger(foreign_id, initial_value=value)
        seen: dict[str, int] = dict.fromkeys(run_ids, 0)
        width = max(len(f) for f in run_ids)
        deadline = time.monotonic() + timeout
        while True:
            finished = 0
            for foreign_id, run_id in run_ids.items():
                history = await store.history(run_id)
                for record in history[seen[foreign_id] :]:
                    status = wf.spec.status_type(record.status).name
                    elapsed = (record.updated_at - started).total_seconds() * 1000
                    out(f"{elapsed:8.1f} ms  {foreign_id:<{width}}  {status:<20} {record.run_state.name}")
                seen[foreign_id] = len(history)
                if history and history[-1].run_state.finished():
                    finished += 1
            if finished == len(run_ids):
                break
            if time.monotonic() > deadline:
                out(f"timed out: {len(run_ids) - finished} runs did not finish within {timeout}s")
                return False
            await asyncio.sleep(0.01)
    totals: dict[str, int] = {}
    for run_id in run_ids.values():
        last = (await store.lookup(run_id)).status
        name = builder.status_type(last).name
        totals[name] = totals.get(name, 0) + 1
    summary = ", ".join(f"{n} {name}" for name, n in sorted(totals.items()))
    out(f"all {len(run_ids)} runs finished: {summary}")
    return True
