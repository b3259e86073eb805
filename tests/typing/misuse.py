"""Misuse that mypy must reject. `tests/test_typing.py` runs mypy on this file and checks that every line marked
`# E:` is reported, and nothing else is: the public API's types catch these mistakes before anything runs."""

from __future__ import annotations

import enum

from pydantic import BaseModel

from conveyor import Builder, Client, Run, Workflow
from conveyor.adapters.base import RecordStore
from conveyor.adapters.memory import MemoryRecordStore, MemoryRoleScheduler, MemoryStreamer


class Order(BaseModel):
    id: str = ""


class Invoice(BaseModel):
    number: int = 0


class Status(enum.IntEnum):
    CREATED = 1
    PAID = 2


class Other(enum.IntEnum):
    START = 1


async def pay(run: Run[Order, Status]) -> Status:
    return Status.PAID


async def bill(run: Run[Invoice, Status]) -> Status:
    return Status.PAID


async def other_status(run: Run[Order, Other]) -> Other:
    return Other.START


async def returns_text(run: Run[Order, Status]) -> str:
    return "PAID"


async def marks(run: Run[Order, Status]) -> Status:
    run.object.id = "x"
    return Status.PAID


b = Builder("orders", Order, Status)
b.add_step(Status.CREATED, pay, Status.PAID)
b.add_step(Status.CREATED, bill, Status.PAID)  # E: a step for another object type
b.add_step(Status.CREATED, other_status, Status.PAID)  # E: a step of another status enum
b.add_step(Status.CREATED, returns_text, Status.PAID)  # E: a step returning something that is not a status
b.add_step(Status.CREATED, pay, Other.START)  # E: a destination from another enum
b.add_step(Status.CREATED, pay, Status.PAID).with_options(parallel_count="2")  # E: a count given as text
b.add_callback(Status.PAID, pay, Status.PAID)  # E: a callback takes the payload too


async def use() -> None:
    wf = b.build(None, None, None)  # E: adapters are required
    run = await wf.get_run("x")
    print(run.object.number)  # E: the object is an Order
    await wf.trigger("x", start_at=Other.START)  # E: start_at is a Status
    await wf.callback("x", Status.PAID, "text")  # E: the payload is bytes


def wf_of(builder: Builder[Order, Status]) -> Workflow[Order, Status]:
    return builder.build(MemoryStreamer(), MemoryRecordStore(), MemoryRoleScheduler())


async def from_a_backend(store: RecordStore) -> None:
    client = Client(store, b)
    await client.trigger(b, "x", initial_value=Invoice())  # E: the object is an Order
    await client.trigger(b, "x", start_at=Other.START)  # E: start_at is a Status
    run = await client.get("x", b)
    print(run.object.number)  # E: a run of b holds an Order
    await client.trigger(b, 42)  # E: a foreign id is text
    Client(b)  # E: a client needs a record store first
    await client.fork("x", Other.START, workflow=b)  # E: a fork of a run of b starts at a Status
    await client.fork("x", "PAID")  # E: a status is an enum member or its number, not its name
    await wf_of(b).fork("x", Other.START)  # E: the workflow's own fork takes its Status
