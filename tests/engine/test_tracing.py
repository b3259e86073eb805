"""OpenTelemetry traces of runs on the memory adapters: a span per trigger, step attempt, control and outbox publish,
with their attributes and outcomes, each step's span a child of the span that wrote the record it acted on (by its
event's traceparent or by the in-process handoff), and nothing of opentelemetry imported when it is not installed."""

from __future__ import annotations

import asyncio
import enum
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel

from conveyor import Builder, Client, Run, RunState, duration_timer
from conveyor._core.records import HEADER_TRACEPARENT
from conveyor._engine.workflow import Workflow
from conveyor.adapters.memory import MemoryRecordStore, MemoryRoleScheduler, MemoryStreamer, MemoryTimeoutStore
from tests.otel import memory_exporter


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = memory_exporter()
    yield exporter
    exporter.clear()


class Parcel(BaseModel):
    weight: int = 0


class Status(enum.IntEnum):
    CREATED = 1
    PACKED = 2
    SENT = 3
    HELD = 4


def _workflow(*, handoff: bool = True, fail_first: bool = False, skip: bool = False) -> Workflow[Parcel, Status]:
    attempts: list[str] = []

    def pack(run: Run[Parcel, Status]) -> Status:
        attempts.append(run.run_id)
        if fail_first and len(attempts) == 1:
            raise RuntimeError("scale broken")
        return Status.PACKED

    def send(run: Run[Parcel, Status]) -> Status:
        return run.skip() if skip else Status.SENT  # type: ignore[return-value]

    b = Builder("parcels", Parcel, Status)
    # A consume lag turns the handoff off: each step then acts on its event, as across processes.
    lag = timedelta(0) if handoff else timedelta(milliseconds=1)
    b.add_step(Status.CREATED, pack, Status.PACKED).with_options(
        err_backoff=timedelta(milliseconds=10), consume_lag=lag
    )
    b.add_step(Status.PACKED, send, Status.SENT, Status.HELD).with_options(consume_lag=lag)
    return b.build(MemoryStreamer(), MemoryRecordStore(), MemoryRoleScheduler())


def _named(spans: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name.startswith(prefix)]


def _one(spans: InMemorySpanExporter, prefix: str, **attributes: object) -> ReadableSpan:
    found = [
        s
        for s in _named(spans, prefix)
        if all(s.attributes is not None and s.attributes.get(k) == v for k, v in attributes.items())
    ]
    assert len(found) == 1, [(s.name, s.attributes) for s in spans.get_finished_spans()]
    return found[0]


async def _wait_for_spans(spans: InMemorySpanExporter, prefix: str, count: int) -> None:
    for _ in range(500):
        if len(_named(spans, prefix)) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{prefix}: {[(s.name, s.attributes) for s in spans.get_finished_spans()]}")


@pytest.mark.parametrize("handoff", [True, False], ids=["handoff", "events"])
async def test_a_run_is_one_trace_each_step_a_child_of_the_span_that_wrote_its_record(
    spans: InMemorySpanExporter, handoff: bool
) -> None:
    wf = _workflow(handoff=handoff)
    async with wf:
        run_id = await wf.trigger("p-1")
        await wf.wait_for("p-1", run_id, Status.SENT, timeout=5)
        await _wait_for_spans(spans, "conveyor step", 2)

    trigger = _one(spans, "conveyor trigger parcels", **{"conveyor.run_id": run_id})
    assert trigger.kind is SpanKind.PRODUCER
    assert trigger.attributes is not None
    assert dict(trigger.attributes) == {
        "conveyor.workflow": "parcels",
        "conveyor.foreign_id": "p-1",
        "conveyor.run_id": run_id,
        "conveyor.from_status": 1,
        "conveyor.process": "trigger",
        "conveyor.outcome": "stored",
        "conveyor.to_status": 1,
    }
    pack = _one(spans, "conveyor step parcels", **{"conveyor.from_status": 1})
    send = _one(spans, "conveyor step parcels", **{"conveyor.from_status": 2})
    assert pack.kind is SpanKind.CONSUMER
    assert pack.attributes is not None and send.attributes is not None
    assert pack.attributes["conveyor.outcome"] == "stored"
    assert pack.attributes["conveyor.to_status"] == 2
    assert pack.attributes["conveyor.shard"] == "1-of-1"
    assert pack.attributes["conveyor.run_id"] == run_id
    assert pack.attributes["conveyor.process"] == "created-consumer-1-of-1"
    assert send.attributes["conveyor.to_status"] == 3

    assert trigger.context is not None and pack.context is not None and send.context is not None
    assert {trigger.context.trace_id, pack.context.trace_id, send.context.trace_id} == {trigger.context.trace_id}
    assert trigger.parent is None
    assert pack.parent is not None and pack.parent.span_id == trigger.context.span_id
    assert send.parent is not None and send.parent.span_id == pack.context.span_id


async def test_the_event_carries_the_traceparent_of_the_span_that_wrote_it(spans: InMemorySpanExporter) -> None:
    wf = _workflow(handoff=False)
    store = wf.store
    assert isinstance(store, MemoryRecordStore)
    # Not running: the trigger's outbox event stays in the store to be read.
    run_id = await Client(store, wf).trigger(wf, "p-1")
    (event,) = await store.list_outbox_events("parcels", 10)
    trigger = _one(spans, "conveyor trigger", **{"conveyor.run_id": run_id})
    assert trigger.context is not None
    traceparent = event.decode().headers[HEADER_TRACEPARENT]
    assert traceparent.startswith(f"00-{trigger.context.trace_id:032x}-{trigger.context.span_id:016x}-")
    # The run row does not keep it: only the event does.
    assert (await store.lookup(run_id)).meta.trace_context == ""


async def test_a_run_triggered_inside_a_span_joins_its_trace(spans: InMemorySpanExporter) -> None:
    wf = _workflow()
    async with wf:
        with trace.get_tracer("web").start_as_current_span("POST /parcels") as request:
            run_id = await wf.trigger("p-1")
        await wf.wait_for("p-1", run_id, Status.SENT, timeout=5)
        await _wait_for_spans(spans, "conveyor step", 2)
    trigger = _one(spans, "conveyor trigger", **{"conveyor.run_id": run_id})
    assert trigger.parent is not None and trigger.parent.span_id == request.get_span_context().span_id
    for step in _named(spans, "conveyor step"):
        assert step.context is not None and step.context.trace_id == request.get_span_context().trace_id


@pytest.mark.parametrize("handoff", [True, False], ids=["handoff", "events"])
async def test_an_error_then_a_retry_each_a_span_with_its_outcome(spans: InMemorySpanExporter, handoff: bool) -> None:
    wf = _workflow(handoff=handoff, fail_first=True)
    async with wf:
        run_id = await wf.trigger("p-1")
        await wf.wait_for("p-1", run_id, Status.SENT, timeout=5)
        await _wait_for_spans(spans, "conveyor step", 3)
    packs = _named(spans, "conveyor step")
    failed = [s for s in packs if s.attributes is not None and s.attributes["conveyor.outcome"] == "error"]
    assert len(failed) == 1
    assert failed[0].status.status_code is StatusCode.ERROR
    assert failed[0].status.description == "RuntimeError: scale broken"
    assert [e.name for e in failed[0].events] == ["exception"]
    stored = _one(spans, "conveyor step", **{"conveyor.from_status": 1, "conveyor.outcome": "stored"})
    # The retry acts on the same record version: a sibling of the failed attempt, under the trigger.
    assert stored.parent is not None and failed[0].parent is not None
    assert stored.parent.span_id == failed[0].parent.span_id


async def test_a_skip_says_why(spans: InMemorySpanExporter) -> None:
    wf = _workflow(skip=True)
    async with wf:
        run_id = await wf.trigger("p-1")
        await _wait_for_spans(spans, "conveyor step", 2)
        assert (await wf.get_run(run_id)).status is Status.PACKED
    send = _one(spans, "conveyor step", **{"conveyor.from_status": 2})
    assert send.attributes is not None
    assert send.attributes["conveyor.outcome"] == "skipped"
    assert send.attributes["conveyor.skip_reason"] == "next value specified skip"
    assert "conveyor.to_status" not in send.attributes


async def test_an_event_of_a_stopped_run_is_a_skipped_span(spans: InMemorySpanExporter) -> None:
    wf = _workflow(handoff=False)
    client = Client(wf.store, wf)
    run_id = await client.trigger(wf, "p-1")
    await client.pause(run_id, "inventory")
    async with wf:
        await _wait_for_spans(spans, "conveyor step", 1)
    pack = _one(spans, "conveyor step", **{"conveyor.from_status": 1})
    assert pack.attributes is not None
    assert pack.attributes["conveyor.outcome"] == "skipped"
    assert pack.attributes["conveyor.skip_reason"] == "event record version lower than latest record version"


async def test_controls_are_spans_of_the_run(spans: InMemorySpanExporter) -> None:
    wf = _workflow(handoff=False)
    client = Client(wf.store, wf)
    run_id = await client.trigger(wf, "p-1")
    await client.pause(run_id, "inventory")
    await client.resume(run_id)
    await client.cancel(run_id, "lost")
    for control, state in (("pause", "paused"), ("resume", "running"), ("cancel", "cancelled")):
        span = _one(spans, f"conveyor {control} parcels")
        assert span.attributes is not None
        assert span.attributes["conveyor.run_id"] == run_id
        assert span.attributes["conveyor.foreign_id"] == "p-1"
        assert span.attributes["conveyor.outcome"] == "stored"
        assert span.attributes["conveyor.process"] == f"api-{state}"
    assert (await client.get(run_id)).run_state is RunState.CANCELLED


async def test_an_outbox_publish_links_the_spans_that_wrote_its_events(spans: InMemorySpanExporter) -> None:
    wf = _workflow(handoff=False)
    client = Client(wf.store, wf)
    first = await client.trigger(wf, "p-1")
    second = await client.trigger(wf, "p-2")
    async with wf:
        await wf.wait_for("p-1", first, Status.SENT, timeout=5)
        await wf.wait_for("p-2", second, Status.SENT, timeout=5)
    triggers = {_one(spans, "conveyor trigger", **{"conveyor.run_id": r}).context.span_id for r in (first, second)}
    publish = [s for s in _named(spans, "conveyor publish parcels-1") if s.links]
    assert publish, [s.name for s in spans.get_finished_spans()]
    assert publish[0].kind is SpanKind.PRODUCER
    assert publish[0].parent is None
    assert publish[0].attributes is not None and publish[0].attributes["conveyor.topic"] == "parcels-1"
    assert {link.context.span_id for s in publish for link in s.links} == triggers


@pytest.mark.parametrize("opentelemetry", ["blocked", "no provider"])
def test_without_opentelemetry_or_a_provider_runs_carry_no_trace_context(tmp_path: Path, opentelemetry: str) -> None:
    """Not installed (blocked here): nothing of it is imported. Installed but no tracer provider set: not traced."""
    script = tmp_path / "blocked.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, enum, sys
            import importlib.abc

            class Block(importlib.abc.MetaPathFinder):
                def find_spec(self, name, path=None, target=None):
                    if name == "opentelemetry" or name.startswith("opentelemetry."):
                        raise ImportError(f"blocked: {name}")
                    return None

            if sys.argv[1] == "blocked":
                sys.meta_path.insert(0, Block())

            from pydantic import BaseModel
            from conveyor import Builder, Client
            from conveyor._engine import tracing
            from conveyor.adapters.memory import MemoryRecordStore, MemoryRoleScheduler, MemoryStreamer

            class Status(enum.IntEnum):
                CREATED = 1
                DONE = 2

            class Thing(BaseModel):
                pass

            async def main():
                b = Builder("things", Thing, Status)
                b.add_step(Status.CREATED, lambda run: Status.DONE, Status.DONE)
                store = MemoryRecordStore()
                wf = b.build(MemoryStreamer(), store, MemoryRoleScheduler())
                run_id = await Client(store, wf).trigger(wf, "t-1")
                (event,) = await store.list_outbox_events("things", 10)
                assert "traceparent" not in event.decode().headers
                async with wf:
                    await wf.wait_for("t-1", run_id, Status.DONE, timeout=5)
                assert tracing.tracer() is None
                print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))

            asyncio.run(main())
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script), opentelemetry],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert result.returncode == 0, result.stderr
    if opentelemetry == "blocked":
        assert result.stdout.strip() == "[]"
    else:
        assert "'opentelemetry.trace'" in result.stdout


class Letter(enum.IntEnum):
    WRITTEN = 1
    ANSWERED = 2
    LATE = 3


async def test_a_callback_and_a_timeout_are_spans_with_their_outcomes(spans: InMemorySpanExporter) -> None:
    def answered(run: Run[Parcel, Letter], payload: bytes) -> Letter:
        return Letter.ANSWERED

    def late(run: Run[Parcel, Letter], now: datetime) -> Letter:
        return Letter.LATE

    b = Builder("letters", Parcel, Letter)
    b.add_callback(Letter.WRITTEN, answered, Letter.ANSWERED)
    b.add_timeout(Letter.WRITTEN, duration_timer(timedelta(0)), late, Letter.LATE).with_options(
        polling_frequency=timedelta(milliseconds=10)
    )
    wf = b.build(MemoryStreamer(), MemoryRecordStore(), MemoryRoleScheduler(), timeout_store=MemoryTimeoutStore())
    async with wf:
        first = await wf.trigger("l-1")
        await wf.wait_for("l-1", first, Letter.LATE, timeout=5)
        await _wait_for_spans(spans, "conveyor timeout", 1)
        assert not await wf.callback("l-1", Letter.WRITTEN, b"too late")
        second = await wf.trigger("l-2")
        assert await wf.callback("l-2", Letter.WRITTEN, b"yes")

    timeout = _one(spans, "conveyor timeout letters", **{"conveyor.run_id": first})
    assert timeout.attributes is not None and timeout.attributes["conveyor.outcome"] == "stored"
    assert timeout.attributes["conveyor.to_status"] == Letter.LATE
    refused = _one(spans, "conveyor callback letters", **{"conveyor.run_id": first})
    assert refused.attributes is not None and refused.attributes["conveyor.outcome"] == "skipped"
    assert refused.attributes["conveyor.skip_reason"] == "run not at the callback's status or stopped"
    called = _one(spans, "conveyor callback letters", **{"conveyor.run_id": second})
    assert called.attributes is not None and called.attributes["conveyor.outcome"] == "stored"
    assert called.attributes["conveyor.from_status"] == Letter.WRITTEN
    assert called.attributes["conveyor.to_status"] == Letter.ANSWERED
