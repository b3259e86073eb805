"""Error logs: a process that keeps failing (a database or broker down) is logged once, then at most once per
interval with the count of failures left unlogged, while the error metric counts every failure; debug mode logs
every one."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from conveyor import Builder, Run
from conveyor._engine.logs import ERROR_LOG_INTERVAL, Decisions
from conveyor.adapters.memory import MemoryRecordStore, MemoryRoleScheduler, MemoryStreamer
from conveyor.testing import FakeClock
from tests.engine._orders import Order, Status


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "conveyor" and r.levelno == logging.WARNING]


def test_a_failing_process_is_logged_once_per_interval_with_what_went_unlogged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticks = Ticks()
    decisions = Decisions("orders", enabled=False, monotonic=ticks)
    down = ConnectionError("server closed the connection unexpectedly")
    with caplog.at_level(logging.WARNING, logger="conveyor"):
        for _ in range(5):
            decisions.process_error("process error, backing off", down, "created-consumer-1-of-2", backoff=1)
            ticks.now += 1
        # Another process is logged on its own account.
        decisions.process_error("process error, backing off", down, "paid-consumer-1-of-1", backoff=1)
        assert len(warnings(caplog)) == 2
        ticks.now = ERROR_LOG_INTERVAL
        decisions.process_error("process error, backing off", down, "created-consumer-1-of-2", backoff=1)
    lines = warnings(caplog)
    assert len(lines) == 3
    assert lines[0] == (
        "process error, backing off [workflow=orders process=created-consumer-1-of-2 backoff=1]: "
        "server closed the connection unexpectedly"
    )
    assert "process=paid-consumer-1-of-1" in lines[1] and "unlogged" not in lines[1]
    assert "process=created-consumer-1-of-2 backoff=1 unlogged=4]" in lines[2]


def test_debug_mode_logs_every_failure(caplog: pytest.LogCaptureFixture) -> None:
    decisions = Decisions(f"debug-{uuid.uuid4().hex[:6]}", enabled=True, monotonic=Ticks())
    with caplog.at_level(logging.WARNING, logger="conveyor"):
        for _ in range(3):
            decisions.process_error("process error, backing off", RuntimeError("down"), "p")
    assert len(warnings(caplog)) == 3


async def test_a_step_failing_many_times_logs_once_and_counts_every_failure(caplog: pytest.LogCaptureFixture) -> None:
    name = f"quiet-{uuid.uuid4().hex[:8]}"
    clock = FakeClock()
    failures = 20

    def flaky(run: Run[Order, Status]) -> Status:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("payment provider down")
        return Status.PAID

    b = Builder(name, Order, Status)
    b.add_step(Status.CREATED, flaky, Status.PAID).with_options(err_backoff=timedelta(0))
    wf = b.build(MemoryStreamer(clock=clock), MemoryRecordStore(clock=clock), MemoryRoleScheduler(), clock=clock)
    labels = {"workflow_name": name, "process_name": "created-consumer-1-of-1"}
    with caplog.at_level(logging.WARNING, logger="conveyor"):
        async with wf:
            run_id = await wf.trigger("o")
            await wf.wait_for("o", run_id, Status.PAID, timeout=10)
            await asyncio.sleep(0)
    assert REGISTRY.get_sample_value("workflow_process_error_count_total", labels) == 20
    logged = [line for line in warnings(caplog) if f"workflow={name}" in line]
    assert len(logged) == 1, logged
    assert "payment provider down" in logged[0]
