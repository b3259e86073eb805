"""Building: every problem of a graph is refused at build time with InvalidWorkflow naming it."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Any

import pytest

from conveyor import Builder, Options, Workflow
from conveyor.adapters.base import ConnectorConsumer
from conveyor.adapters.memory import (
    MemoryRecordStore,
    MemoryRoleScheduler,
    MemoryStreamer,
    MemoryTimeoutStore,
)
from conveyor.errors import InvalidInput, InvalidWorkflow
from tests.engine._orders import Order, Other, Status


async def ok(run: object) -> Status:
    return Status.PAID


async def ok_at(run: object, now: datetime) -> Status:
    """A timeout's function: called with the run and the time it fired."""
    return Status.PAID


def build(b: Builder[Order, Status], **kwargs: Any) -> Workflow[Order, Status]:
    return b.build(MemoryStreamer(), MemoryRecordStore(), MemoryRoleScheduler(), **kwargs)


def problems(b: Builder[Order, Status], **kwargs: object) -> list[str]:
    with pytest.raises(InvalidWorkflow) as info:
        build(b, **kwargs)
    assert info.value.workflow_name == b.name
    return info.value.problems


def test_a_valid_graph_builds() -> None:
    b = Builder("orders", Order, Status)
    b.add_step(Status.CREATED, ok, Status.PAID)
    wf = build(b)
    assert wf.name == "orders"


def test_status_outside_the_enum() -> None:
    b = Builder("orders", Order, Status)
    b.add_step(Status.CREATED, ok, 42)  # type: ignore[arg-type]
    b.add_step(Status.PAID, ok, Other.DONE)  # type: ignore[arg-type]
    found = problems(b)
    assert any("42 is outside Status" in p for p in found)
    assert any("Other.DONE" in p and "is not a Status" in p for p in found)


def test_duplicate_step() -> None:
    b = Builder("orders", Order, Status)
    b.add_step(Status.CREATED, ok, Status.PAID)
    b.add_step(Status.CREATED, ok, Status.PAYMENT_FAILED)
    assert any("a step from CREATED already exists" in p for p in problems(b))


def test_zero_status_is_reserved() -> None:
    class WithZero(enum.IntEnum):
        NONE = 0
        START = 1
        END = 2

    b: Builder[Order, WithZero] = Builder("z", Order, WithZero)
    b.add_step(WithZero.START, ok, WithZero.NONE)  # type: ignore[arg-type]
    with pytest.raises(InvalidWorkflow, match="reserved"):
        b.build(MemoryStreamer(), MemoryRecordStore(), MemoryRoleScheduler())


def test_every_problem_is_listed_at_once() -> None:
    b = Builder("orders", Order, Status)
    b.add_step(Status.CREATED, "not callable", Status.PAID)  # type: ignore[arg-type]
    b.add_step(Status.PAID, ok)
    b.add_timeout(Status.SHIPPED, lambda r, n: n, ok_at, Status.DELIVERED)
    found = problems(b)
    assert len(found) == 3, found
    assert any("fn must be callable" in p for p in found)
    assert any("declares no next status" in p for p in found)
    assert any("no timeout_store" in p for p in found)


def test_no_starting_point() -> None:
    b = Builder("cycle", Order, Status)
    b.add_step(Status.CREATED, ok, Status.PAID)
    b.add_step(Status.PAID, ok, Status.CREATED)
    assert any("no starting status" in p for p in problems(b))


def test_empty_workflow() -> None:
    assert any("needs at least one" in p for p in problems(Builder("empty", Order, Status)))


def test_timeouts_with_a_timeout_store_build() -> None:
    b = Builder("t", Order, Status)
    b.add_timeout(Status.CREATED, lambda r, n: n, ok_at, Status.PAID)
    build(b, timeout_store=MemoryTimeoutStore())


def test_duplicate_connector_names() -> None:
    class Conn:
        async def make(self, consumer_name: str) -> ConnectorConsumer:
            raise AssertionError

    b = Builder("c", Order, Status)
    b.add_step(Status.CREATED, ok, Status.PAID)
    b.add_connector("feed", Conn(), lambda w, e: None)
    b.add_connector("feed", Conn(), lambda w, e: None)
    assert any("connector names must be unique" in p for p in problems(b))


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("parallel_count", 0, "an integer >= 1"),
        ("parallel_count", "2", "an integer >= 1"),
        ("err_backoff", -1, "a duration >= 0"),
        ("polling_frequency", 0, "a positive duration"),
        ("pause_after_err_count", -1, "an integer >= 0"),
        ("lag_alert", "soon", "a timedelta or a number of seconds"),
        ("max_in_flight", 0, "an integer >= 1"),
    ],
)
def test_bad_options_name_the_field(option: str, value: object, expected: str) -> None:
    b = Builder("orders", Order, Status)
    handle = b.add_step(Status.CREATED, ok, Status.PAID)
    with pytest.raises(InvalidInput, match=f"{option}: expected {expected}") as info:
        handle.with_options(**{option: value})  # type: ignore[arg-type]
    assert info.value.field == option


def test_timeouts_refuse_parallel_count() -> None:
    b = Builder("orders", Order, Status)
    handle = b.add_timeout(Status.CREATED, lambda r, n: n, ok_at, Status.PAID)
    with pytest.raises(InvalidInput, match="parallel_count"):
        handle.with_options(parallel_count=2)


def test_callbacks_and_timeouts_refuse_max_in_flight() -> None:
    b = Builder("orders", Order, Status)
    timeout = b.add_timeout(Status.CREATED, lambda r, n: n, ok_at, Status.PAID)
    with pytest.raises(InvalidInput, match="max_in_flight"):
        timeout.with_options(max_in_flight=2)


def test_options_resolve_to_the_references_defaults() -> None:
    from conveyor._engine.options import resolve

    r = resolve(Options(), Options())
    assert (r.parallel_count, r.polling_frequency, r.err_backoff, r.lag_alert, r.consume_lag) == (
        1,
        0.5,
        1.0,
        1800.0,
        0.0,
    )
    assert r.pause_after_err_count == 0
    lagged = resolve(Options(consume_lag=timedelta(minutes=5)), Options())
    assert lagged.lag_alert == 1800 + 300
    own = resolve(Options(err_backoff=timedelta(seconds=3)), Options(err_backoff=timedelta(seconds=9)))
    assert own.err_backoff == 3
    default = resolve(Options(), Options(err_backoff=timedelta(seconds=9)))
    assert default.err_backoff == 9


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("", Order, Status), "name"),
        (("x", Order, int), "status_type"),
        (("x", "Order", Status), "object_type"),
    ],
)
def test_bad_builder_arguments(args: tuple[object, ...], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        Builder(*args)  # type: ignore[arg-type]
    assert info.value.field == field


def test_roles_are_the_references() -> None:
    b = Builder("order processing", Order, Status)
    b.add_step(Status.CREATED, ok, Status.PAID).with_options(parallel_count=3)
    b.add_step(Status.PAID, ok, Status.FULFILLED)
    b.add_timeout(Status.FULFILLED, lambda r, n: n, ok_at, Status.EXPIRED)
    b.on_complete(lambda r: None)
    b.on_pause(lambda r: None)
    wf = b.build(MemoryStreamer(), MemoryRecordStore(), MemoryRoleScheduler(), timeout_store=MemoryTimeoutStore())
    assert sorted(wf.roles()) == sorted(
        [
            "order_processing-outbox-consumer",
            "order_processing-1-consumer-1-of-3",
            "order_processing-1-consumer-2-of-3",
            "order_processing-1-consumer-3-of-3",
            "order_processing-2-consumer-1-of-1",
            "order_processing-4-timeout-consumer",
            "order_processing-4-timeout-auto-inserter-consumer",
            "order_processing-completed-run-state-change-hook-consumer",
            "order_processing-paused-run-state-change-hook-consumer",
            "order_processing-delete-consumer",
            "order_processing-paused-records-retry-consumer",
            # Ours, beside the reference's: the stranded-runs check.
            "order_processing-stranded-runs-check",
        ]
    )
    no_retry = b.build(
        MemoryStreamer(),
        MemoryRecordStore(),
        MemoryRoleScheduler(),
        timeout_store=MemoryTimeoutStore(),
        pause_retry=None,
    )
    assert "order_processing-paused-records-retry-consumer" not in no_retry.roles()


def test_mermaid() -> None:
    b = Builder("orders", Order, Status)
    b.add_step(Status.CREATED, ok, Status.PAID, Status.PAYMENT_FAILED)
    b.add_callback(Status.PAID, lambda r, p: Status.FULFILLED, Status.FULFILLED)
    text = build(b).mermaid()
    assert "stateDiagram-v2" in text
    assert "[*]-->CREATED" in text
    assert "CREATED-->PAID: step" in text
    assert "PAID-->FULFILLED: callback" in text
    assert "FULFILLED-->[*]" in text
    assert "PAYMENT_FAILED-->[*]" in text
