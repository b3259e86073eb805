"""One run is one trace across processes: a run triggered here (inside a span of this process), its first step
done by one worker process and its second by another, on Postgres and Kafka. Each process exports its own spans;
together they must form one trace, each step's span a child of the span (in another process) that wrote the event
it consumed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from opentelemetry import trace

from conveyor import Client, RunState
from conveyor.adapters.postgres import PostgresRecordStore
from tests.helpers import ROOT
from tests.integration.trace_worker import Leg, builder
from tests.otel import memory_exporter


class _Worker:
    def __init__(self, name: str, identity: str, env: dict[str, str], directory: Path) -> None:
        self.spans = directory / f"spans-{identity}.jsonl"
        self.log = directory / f"worker-{identity}.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.trace_worker", name, identity, str(self.spans)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while "running" not in self.log.read_text():
            assert self.process.poll() is None and time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def stop(self) -> list[dict[str, Any]]:
        """Stop it (its spans are all written then) and read its spans."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)
        assert self.process.returncode == 0, self.log.read_text()
        return [json.loads(line) for line in self.spans.read_text().splitlines() if line.strip()]


def _named(spans: list[dict[str, Any]], prefix: str, run_id: str) -> list[dict[str, Any]]:
    return [s for s in spans if s["name"].startswith(prefix) and s["attributes"].get("conveyor.run_id") == run_id]


async def test_a_run_done_by_two_worker_processes_is_one_trace(
    pg_dsn: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    name = f"traced-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "CONVEYOR_PG_DSN": pg_dsn, "CONVEYOR_KAFKA": kafka_bootstrap}
    here = memory_exporter()
    first = _Worker(name, "first", env, tmp_path)
    second = _Worker(name, "second", env, tmp_path)
    workers = [first, second]
    try:
        store = PostgresRecordStore(pg_dsn)
        async with Client(store, builder(name, "api")) as client:
            with trace.get_tracer("web").start_as_current_span("POST /parcels") as request:
                run_id = await client.trigger(name, "parcel-1")
            async with asyncio.timeout(60):
                while (await client.get(run_id)).run_state is not RunState.COMPLETED:
                    await asyncio.sleep(0.05)
            assert (await client.get(run_id)).object.handled_by == ["first", "second"]
        first_spans, second_spans = first.stop(), second.stop()
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait(10)

    trace_id = request.get_span_context().trace_id
    (trigger,) = [s for s in here.get_finished_spans() if s.name == f"conveyor trigger {name}"]
    assert trigger.context is not None and trigger.context.trace_id == trace_id
    (sort,) = _named(first_spans, f"conveyor step {name}", run_id)
    (load,) = _named(second_spans, f"conveyor step {name}", run_id)
    for span, status in ((sort, Leg.RECEIVED), (load, Leg.SORTED)):
        assert span["context"]["trace_id"] == f"0x{trace_id:032x}", span
        assert span["kind"] == "SpanKind.CONSUMER"
        assert span["attributes"]["conveyor.from_status"] == status
        assert span["attributes"]["conveyor.outcome"] == "stored"
        assert span["attributes"]["conveyor.to_status"] == status + 1
    # The first worker's step is a child of this process's trigger, the second's of the first worker's step.
    assert sort["parent_id"] == f"0x{trigger.context.span_id:016x}"
    assert load["parent_id"] == sort["context"]["span_id"]
    # The first worker's relay published the events of the trigger and of its own step, linked to their writers.
    publishes = {s["attributes"]["conveyor.topic"]: s for s in first_spans if s["name"].startswith("conveyor publish")}
    assert {link["context"]["span_id"] for link in publishes[f"{name}-1"]["links"]} == {
        f"0x{trigger.context.span_id:016x}"
    }
    assert {link["context"]["span_id"] for link in publishes[f"{name}-2"]["links"]} == {sort["context"]["span_id"]}
