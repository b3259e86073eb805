"""Engine overhead on the in-memory adapters: a 3-step workflow over N runs.

Prints one JSON line and a table: transitions per second, and CPU microseconds per transition (process CPU time
over the stored step transitions, triggering included). Target: <= 20 us CPU per transition with Python's default
garbage collector settings (what a process that embeds a workflow has). Measured with Python's defaults first, in
a process that has imported what an embedding one would (conveyor and its memory adapters), then with the garbage
collector set as `conveyor worker` sets it (`settle_heap`, imported for it). The wait for the runs to complete
costs the measurement little: a look at the last run every 2 ms, then at the count of active runs.

    python bench/engine.py [--runs 20000] [--parallel 1] [--uvloop] [--trace] [--instructions]

--instructions also counts the instructions a transition costs, under valgrind's callgrind (which counts
instructions, not seconds: the same figure run after run, whatever else the machine does, where CPU time on a
shared VM moves by 20%). It runs the measurement twice under callgrind, with a quarter of --runs and with all of
them, with Python's default GC and a fixed hash seed, and divides the difference by the transitions between them,
so start-up and imports cancel out. Callgrind runs Python about 50 times slower: --runs 2000 takes about 90 s.

--trace sets an OpenTelemetry SDK tracer provider (batch span processor, in-memory exporter: the SDK's own cost,
without a network), so the figures include a span per trigger, step and outbox publish and the trace context carried
on every event. Without it no provider is set and the engine traces nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _flags
from _workload import TRANSITIONS_PER_RUN, builder
from conveyor import RecordFilter, RunState
from conveyor.adapters.memory import MemoryRecordStore, MemoryRoleScheduler, MemoryStreamer


async def measure(runs: int, parallel: int) -> dict[str, float | int | str]:
    b = builder("bench-engine", parallel)
    store = MemoryRecordStore()
    wf = b.build(MemoryStreamer(), store, MemoryRoleScheduler(), pause_retry=None)
    transitions = runs * TRANSITIONS_PER_RUN
    async with wf:
        gc.collect()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        last = ""
        for i in range(runs):
            last = await wf.trigger(f"item-{i}")
        await _until_all_done(store, last)
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
        "target_cpu_us_per_transition_default_gc": 20,
        "python": platform.python_version(),
        "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
    }


async def _until_all_done(store: MemoryRecordStore, last: str) -> None:
    """Wait until every run completed, at little cost to the measurement: a look at the last run every 2 ms, then
    the count of active runs (a shard handles several foreign ids at once, so others may still be in flight).
    Not `wait_for`, whose receiver reads every run's completion event: about 2 us per run the engine does not
    spend."""
    while (await store.lookup(last)).run_state is not RunState.COMPLETED:
        await asyncio.sleep(0.002)
    while await store.count_active("bench-engine"):
        await asyncio.sleep(0.002)


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


_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def instructions_per_transition(runs: int, parallel: int, *, uvloop: bool, trace: bool) -> int:
    """Instructions per transition counted by callgrind: see the module docstring."""
    valgrind = shutil.which("valgrind")
    assert valgrind is not None  # main() checked
    small = max(1, runs // 4)
    counted: list[int] = []
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-callgrind-") as scratch:
        for size in (small, runs):
            command = [
                valgrind,
                "--tool=callgrind",
                f"--callgrind-out-file={Path(scratch) / f'callgrind.{size}'}",
                sys.executable,
                __file__,
                "--runs",
                str(size),
                "--parallel",
                str(parallel),
                "--measure-once",
                *(["--uvloop"] if uvloop else []),
                *(["--trace"] if trace else []),
            ]
            done = subprocess.run(
                command,
                env={**os.environ, "PYTHONHASHSEED": "0"},
                capture_output=True,
                text=True,
                check=False,
            )
            found = _COLLECTED.search(done.stderr)
            if done.returncode != 0 or found is None:
                sys.exit(
                    f"--instructions: callgrind run of {size} runs failed ({done.returncode}):\n{done.stderr[-2000:]}"
                )
            counted.append(int(found.group(1)))
    return round((counted[1] - counted[0]) / ((runs - small) * TRANSITIONS_PER_RUN))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=_flags.count, default=20_000)
    parser.add_argument("--parallel", type=_flags.count, default=1)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (pip install uvloop)")
    parser.add_argument("--trace", action="store_true", help="trace with the OpenTelemetry SDK (the otel extra + SDK)")
    parser.add_argument(
        "--instructions", action="store_true", help="also count instructions per transition under callgrind (valgrind)"
    )
    # What --instructions runs under callgrind: one measurement, default GC, nothing printed.
    parser.add_argument("--measure-once", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("argument --instructions: valgrind is not on PATH (Debian's package valgrind)")
    if args.instructions and args.runs < 2:
        parser.error(f"argument --instructions: expected --runs >= 2 (two sizes are counted), got {args.runs}")
    if args.uvloop:
        import uvloop

        uvloop.install()
    exporter = _trace() if args.trace else None
    if args.measure_once:
        asyncio.run(measure(args.runs, args.parallel))
        return
    defaults = gc.get_threshold()
    default_gc = asyncio.run(measure(args.runs, args.parallel))
    # Imported only now: the worker's module brings the CLI, the Kubernetes client and aiohttp, whose objects
    # (some 30,000) every full collection walks. A process that embeds a workflow does not have them, and the
    # measurement with the defaults stands for it; the worker, measured next, has them.
    from conveyor.cli._worker import GC_THRESHOLDS, settle_heap

    settle_heap()
    result: dict[str, float | int | str | list[int]] = dict(asyncio.run(measure(args.runs, args.parallel)))
    result["gc_thresholds"] = list(GC_THRESHOLDS)
    result["cpu_us_per_transition_default_gc"] = default_gc["cpu_us_per_transition"]
    result["traced"] = exporter is not None
    if args.instructions:
        result["instructions_per_transition_default_gc"] = instructions_per_transition(
            args.runs, args.parallel, uvloop=args.uvloop, trace=args.trace
        )
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
        ("CPU us/transition", f"{result['cpu_us_per_transition']} (worker's GC {GC_THRESHOLDS})"),
        ("  with default GC", f"{result['cpu_us_per_transition_default_gc']} (target <= 20; gc thresholds {defaults})"),
        (
            "instructions/transition",
            f"{result['instructions_per_transition_default_gc']:,} (callgrind, default GC)"
            if args.instructions
            else "not counted (--instructions)",
        ),
        ("traced", f"yes ({result['spans']} spans, both measurements)" if exporter is not None else "no"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    if result["completed"] != args.runs:
        sys.exit("not every run completed")


if __name__ == "__main__":
    main()
