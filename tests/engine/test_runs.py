"""Runs end to end on the memory adapters: triggering, stepping, waiting, and bad input at the API."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import pytest

from conveyor import Builder, Run, RunState
from conveyor.errors import (
    InvalidInput,
    InvalidObject,
    InvalidStatus,
    RecordNotFound,
    WorkflowInProgress,
    WorkflowNotRunning,
)
from tests.conftest import Start
from tests.engine._orders import Order, Other, Status


def order_builder(name: str = "orders") -> Builder[Order, Status]:
    async def pay(run: Run[Order, Status]) -> Status:
        run.object.paid = True
        run.object.notes.append("paid")
        return Status.PAID

    def fulfil(run: Run[Order, Status]) -> Status:  # a plain function runs in a worker thread
        assert threading.current_thread() is not threading.main_thread()
        run.object.notes.append("fulfilled")
        return Status.FULFILLED

    b = Builder(name, Order, Status)
    b.add_step(Status.CREATED, pay, Status.PAID, Status.PAYMENT_FAILED)
    b.add_step(Status.PAID, fulfil, Status.FULFILLED)
    return b


async def test_a_run_moves_through_its_statuses(start: Start) -> None:
    wf = await start(order_builder())
    run_id = await wf.trigger("order-1", initial_value=Order(id="order-1", amount=10))
    run = await wf.wait_for("order-1", run_id, Status.FULFILLED, timeout=5)
    assert run.run_state is RunState.COMPLETED
    assert run.status is Status.FULFILLED
    assert run.object == Order(id="order-1", amount=10, paid=True, notes=["paid", "fulfilled"])
    history = await wf.history(run_id)
    assert [(r.status, r.run_state) for r in history] == [
        (Status.CREATED, RunState.INITIATED),
        (Status.PAID, RunState.RUNNING),
        (Status.FULFILLED, RunState.COMPLETED),
    ]
    assert [r.meta.version for r in history] == [1, 2, 3]
    assert history[0].meta.trace_origin.endswith(".py:" + history[0].meta.trace_origin.rsplit(":", 1)[1])
    assert "test_runs.py" in history[0].meta.trace_origin


async def test_the_trace_origin_skips_the_standard_librarys_plumbing(start: Start) -> None:
    wf = await start(order_builder())

    # conveyor's own code (the CLI, the UI's demo) triggering inside an async context manager, for a caller here.
    conveyor_module: dict[str, Any] = {"__name__": "conveyor.cli._traced", "contextlib": contextlib}
    exec(
        "@contextlib.asynccontextmanager\nasync def triggered(wf):\n    yield await wf.trigger('traced')\n",
        conveyor_module,
    )
    async with conveyor_module["triggered"](wf) as run_id:
        pass
    (first, *_) = await wf.history(run_id)
    assert "test_runs.py:" in first.meta.trace_origin, first.meta.trace_origin


async def test_wait_for_a_status_already_reached(start: Start) -> None:
    wf = await start(order_builder())
    run_id = await wf.trigger("o")
    await wf.wait_for("o", run_id, Status.FULFILLED, timeout=5)
    again = await wf.wait_for("o", run_id, Status.FULFILLED, timeout=1)
    assert again.run_id == run_id


async def test_wait_for_times_out_with_the_builtin_timeout_error(start: Start) -> None:
    b = Builder("slow", Order, Status)
    b.add_step(Status.CREATED, lambda r: r.skip(), Status.PAID)
    wf = await start(b)
    run_id = await wf.trigger("o")
    with pytest.raises(TimeoutError):
        await wf.wait_for("o", run_id, Status.PAID, timeout=0.2)


async def test_without_initial_value_the_object_is_the_zero_value(start: Start) -> None:
    wf = await start(order_builder())
    run_id = await wf.trigger("zero")
    run = await wf.wait_for("zero", run_id, Status.FULFILLED, timeout=5)
    assert run.object.id == "" and run.object.paid


async def test_a_dict_initial_value_is_validated_into_the_model(start: Start) -> None:
    wf = await start(order_builder())
    run_id = await wf.trigger("d", initial_value={"id": "d", "amount": 3})  # type: ignore[arg-type]
    run = await wf.wait_for("d", run_id, Status.FULFILLED, timeout=5)
    assert run.object.amount == 3


async def test_an_object_of_the_wrong_type_is_refused_and_nothing_is_stored(start: Start, memory: object) -> None:
    wf = await start(order_builder())
    with pytest.raises(InvalidObject) as info:
        await wf.trigger("bad", initial_value={"amount": "lots"})  # type: ignore[arg-type]
    assert "initial_value.amount" in str(info.value)
    with pytest.raises(InvalidObject, match="initial_value"):
        await wf.trigger("bad", initial_value=Other.DONE)  # type: ignore[arg-type]
    with pytest.raises(RecordNotFound):
        await wf.store.latest(wf.name, "bad")


async def test_one_active_run_per_foreign_id(start: Start) -> None:
    b = Builder("one", Order, Status)
    gate = asyncio.Event()

    async def wait_gate(run: Run[Order, Status]) -> Status:
        await gate.wait()
        return Status.PAID

    b.add_step(Status.CREATED, wait_gate, Status.PAID)
    wf = await start(b)
    first = await wf.trigger("same")
    with pytest.raises(WorkflowInProgress):
        await wf.trigger("same")
    other = await wf.trigger("different")
    gate.set()
    await wf.wait_for("same", first, Status.PAID, timeout=5)
    await wf.wait_for("different", other, Status.PAID, timeout=5)
    second = await wf.trigger("same")
    assert second != first
    assert (await wf.store.latest(wf.name, "same")).run_id == second


async def test_start_at(start: Start) -> None:
    wf = await start(order_builder())
    run_id = await wf.trigger("mid", start_at=Status.PAID)
    run = await wf.wait_for("mid", run_id, Status.FULFILLED, timeout=5)
    assert [h.status for h in await wf.history(run_id)] == [Status.PAID, Status.FULFILLED]
    assert not run.object.paid


@pytest.mark.parametrize(
    ("start_at", "message"),
    [
        (Status.FULFILLED, "a status that a step, callback or timeout consumes"),
        (Status.SHIPPED, "a status of workflow"),
        (Other.CREATED, "a Status"),
        (99, "a Status"),
    ],
)
async def test_an_unknown_start_status_is_refused(start: Start, start_at: object, message: str) -> None:
    wf = await start(order_builder())
    with pytest.raises(InvalidStatus, match=message) as info:
        await wf.trigger("x", start_at=start_at)  # type: ignore[arg-type]
    assert info.value.field == "start_at"
    with pytest.raises(RecordNotFound):
        await wf.store.latest(wf.name, "x")


@pytest.mark.parametrize("foreign_id", ["", None, 7, "x" * 513, "a\x00b", "lone \ud800"])
async def test_a_bad_foreign_id_is_refused(start: Start, foreign_id: object) -> None:
    wf = await start(order_builder())
    with pytest.raises(InvalidInput, match="foreign_id") as info:
        await wf.trigger(foreign_id)  # type: ignore[arg-type]
    assert info.value.field == "foreign_id"
    if isinstance(foreign_id, str) and foreign_id:
        with pytest.raises(RecordNotFound):
            await wf.store.latest(wf.name, foreign_id)


async def test_calls_before_run_say_the_workflow_is_not_running(start: Start) -> None:
    wf = await start(order_builder(), run=False)
    with pytest.raises(WorkflowNotRunning):
        await wf.trigger("x")
    with pytest.raises(WorkflowNotRunning):
        await wf.get_run("x")


async def test_unknown_run_ids(start: Start) -> None:
    wf = await start(order_builder())
    other = await start(order_builder("other-workflow"))
    with pytest.raises(RecordNotFound):
        await wf.get_run("no-such-run")
    foreign = await other.trigger("x")
    with pytest.raises(RecordNotFound):
        await wf.get_run(foreign)
    with pytest.raises(RecordNotFound):
        await wf.pause(foreign)


async def test_async_with_runs_and_stops(start: Start) -> None:
    wf = await start(order_builder(), run=False)
    async with wf:
        assert wf.running
        run_id = await wf.trigger("ctx")
        await wf.wait_for("ctx", run_id, Status.FULFILLED, timeout=5)
    assert not wf.running
    assert set(wf.states().values()) == {"Shutdown"}


async def test_run_with_unknown_roles_is_refused(start: Start) -> None:
    wf = await start(order_builder(), run=False)
    with pytest.raises(InvalidInput, match="roles"):
        await wf.run(roles=["orders-9-consumer-1-of-1"])
    assert not wf.running


async def test_many_runs_concurrently(start: Start) -> None:
    b = order_builder("many")
    wf = await start(b)
    ids = {f"o{i}": await wf.trigger(f"o{i}") for i in range(200)}
    done = await asyncio.gather(*(wf.wait_for(f, r, Status.FULFILLED, timeout=20) for f, r in ids.items()))
    assert all(r.run_state is RunState.COMPLETED for r in done)


async def test_wait_for_a_status_the_run_has_already_passed(start: Start) -> None:
    wf = await start(order_builder("passed"))
    run_id = await wf.trigger("o")
    await wf.wait_for("o", run_id, Status.FULFILLED, timeout=5)
    paid = await wf.wait_for("o", run_id, Status.PAID, timeout=1)
    assert paid.status is Status.PAID and paid.run_state is RunState.RUNNING
    assert paid.object.notes == ["paid"]


async def test_wait_for_checks_its_arguments(start: Start) -> None:
    wf = await start(order_builder("wait-args"))
    run_id = await wf.trigger("o")
    with pytest.raises(RecordNotFound, match="not a run of foreign id"):
        await wf.wait_for("someone-else", run_id, Status.PAID, timeout=1)
    with pytest.raises(InvalidStatus):
        await wf.wait_for("o", run_id, Other.DONE, timeout=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="timeout"):
        await wf.wait_for("o", run_id, Status.PAID, timeout=-1)


# -- idempotent triggers (a caller-chosen run id, as the WorkflowRun sync uses) ---------------------------------------


async def test_a_trigger_with_a_run_id_is_idempotent(start: Start) -> None:
    wf = await start(order_builder("orders-idem"))
    assert await wf.trigger("order-1", run_id="uid-1") == "uid-1"
    # Retried while the run is still in progress: the same id, no WorkflowInProgress, nothing new.
    assert await wf.trigger("order-1", run_id="uid-1") == "uid-1"
    await wf.wait_for("order-1", "uid-1", Status.FULFILLED, timeout=5)
    # Retried after it finished: still the same run, no second one.
    assert await wf.trigger("order-1", run_id="uid-1", initial_value=Order(id="other")) == "uid-1"
    runs = await wf.store.list("orders-idem", limit=100)
    assert [r.run_id for r in runs] == ["uid-1"]
    assert [r.meta.version for r in await wf.store.history("uid-1")] == [1, 2, 3]


async def test_another_run_in_progress_still_refuses_a_trigger_with_a_new_run_id(start: Start) -> None:
    wf = await start(order_builder("orders-idem-busy"), run=False)
    await wf.run(roles=())  # nothing moves the first run on
    await wf.trigger("order-1", run_id="first")
    assert await wf.trigger("order-1", run_id="first") == "first"  # the same run, still in progress
    with pytest.raises(WorkflowInProgress):
        await wf.trigger("order-1", run_id="second")
    with pytest.raises(RecordNotFound):
        await wf.get_run("second")


async def test_a_run_id_of_another_foreign_id_or_workflow_is_refused(start: Start) -> None:
    wf = await start(order_builder("orders-idem-a"))
    other = await start(order_builder("orders-idem-b"))
    await wf.trigger("order-1", run_id="taken")
    with pytest.raises(InvalidInput, match=r"run_id: .*foreign id 'order-1'"):
        await wf.trigger("order-2", run_id="taken")
    with pytest.raises(InvalidInput, match=r"run_id: .*workflow 'orders-idem-a'"):
        await other.trigger("order-1", run_id="taken")
    with pytest.raises(RecordNotFound):
        await wf.store.latest("orders-idem-a", "order-2")


@pytest.mark.parametrize("run_id", ["", "x" * 129, "tab\there", 42])
async def test_a_bad_run_id_is_refused(start: Start, run_id: object) -> None:
    wf = await start(order_builder("orders-idem-bad"))
    with pytest.raises(InvalidInput, match="run_id: expected a non-empty string of at most 128 printable"):
        await wf.trigger("order-1", run_id=run_id)  # type: ignore[arg-type]
    assert await wf.store.list("orders-idem-bad", limit=10) == []
