"""Engine overhead on the in-memory adapters: a 3-step workflow over N runs.

Prints one JSON line and a table: transitions per second, and CPU microseconds per transition (process CPU time
over the stored step transitions, triggering included). Target: <= 30 us CPU per transition. Measured with the
garbage collector set as `conveyor worker` sets it (`settle_heap`), and once more with Python's defaults.

    python bench/engine.py [--runs 20000] [--parallel 1] [--uvloop] [--trace]

--trace sets an OpenTelemetry SDK tracer provider (batch span processor, in-memory exporter: the SDK's own cost,
without a network), so the figures include a span per trigger, step and outbox publish and the trace context carried
on every event. Without it no provider is set and the engine traces nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import sys
import time
from typing import Any

import _flags
from _workload import Stage, builder
from conveyor import RecordFilter, RunState
from conveyor.adapters.memory import MemoryRecordStore, MemoryRoleScheduler, MemoryStreamer
from conveyor.cli._worker import GC_THRESHOLDS, settle_heap


async def measure(runs: int, parallel: int) -> dict[str, float | int | str]:
    b = builder("bench-engine", parallel)
    store = MemoryRecordStore()
    wf = b.build(MemoryStreamer(), store, MemoryRoleScheduler(), pause_retry=None)
    transitions = runs * 3
    async with wf:
        gc.collect()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        last = ""
        for i in range(runs):
            last = await wf.trigger(f"item-{i}")
        await wf.wait_for(f"item-{runs - 1}", last, Stage.DONE, timeout=600)
        # A shard handles several foreign ids at once, so others may still be in flight: wait for every run.
        done = RecordFilter(run_states=[RunState.COMPLETED])
        while len(await store.list("bench-engine", limit=runs, filter=done)) < runs:
            await asyncio.sleep(0.001)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    completed = len(await store.list("bench-engine", limit=runs, filter=RecordFilter(run_states=[RunState.COMPLETED])))
    return {
        "bench": "engine",
        "runs": runs,
        "completed": completed,
        "parallel_count": parallel,
        "transitions": transitions,
        "seconds": round(wall, 3),
        "transitions_per_second": round(transitions / wall),
        "cpu_us_per_transition": round(cpu / transitions * 1e6, 1),
        "target_cpu_us_per_transition": 30,
        "python": platform.python_version(),
        "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
    }


def _trace() -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    # A queue that holds every span of a measurement: the default (2048) drops most of them at this rate.
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=1_000_000))
    trace.set_tracer_provider(provider)
    return exporter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=_flags.count, default=20_000)
    parser.add_argument("--parallel", type=_flags.count, default=1)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (pip install uvloop)")
    parser.add_argument("--trace", action="store_true", help="trace with the OpenTelemetry SDK (the otel extra + SDK)")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    exporter = _trace() if args.trace else None
    defaults = gc.get_threshold()
    default_gc = asyncio.run(measure(args.runs, args.parallel))
    settle_heap()
    result: dict[str, float | int | str | list[int]] = dict(asyncio.run(measure(args.runs, args.parallel)))
    result["gc_thresholds"] = list(GC_THRESHOLDS)
    result["cpu_us_per_transition_default_gc"] = default_gc["cpu_us_per_transition"]
    result["traced"] = exporter is not None
    if exporter is not None:
        from opentelemetry import trace

        trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
        result["spans"] = len(exporter.get_finished_spans())
    print(json.dumps(result))
    rows = [
        ("runs", f"{result['runs']} ({result['completed']} completed)"),
        ("transitions", str(result["transitions"])),
        ("wall time", f"{result['seconds']} s"),
        ("transitions/s", str(result["transitions_per_second"])),
        ("CPU us/transition", f"{result['cpu_us_per_transition']} (target <= 30; worker's GC {GC_THRESHOLDS})"),
        ("  with default GC", f"{result['cpu_us_per_transition_default_gc']} (gc thresholds {defaults})"),
        ("traced", f"yes ({result['spans']} spans, both measurements)" if exporter is not None else "no"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    if result["completed"] != args.runs:
        sys.exit("not every run completed")


if __name__ == "__main__":
    main()
