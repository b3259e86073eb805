"""The deployed version of a small shop workflow, for `conveyor graph diff` (tests/cli/test_graph.py) against
graph_new.py: placed, paid, then packed or refunded; packed orders are shipped."""

from __future__ import annotations

import enum

from pydantic import BaseModel

from conveyor import Builder, Run


class Order(BaseModel):
    id: str = ""


class Status(enum.IntEnum):
    PLACED = 1
    PAID = 2
    PACKED = 3
    SHIPPED = 4
    REFUNDED = 5


def pay(run: Run[Order, Status]) -> Status:
    return Status.PAID


def pack(run: Run[Order, Status]) -> Status:
    return Status.PACKED


def ship(run: Run[Order, Status]) -> Status:
    return Status.SHIPPED


builder = Builder("shop", Order, Status)
builder.add_step(Status.PLACED, pay, Status.PAID)
builder.add_step(Status.PAID, pack, Status.PACKED, Status.REFUNDED)
builder.add_step(Status.PACKED, ship, Status.SHIPPED)
