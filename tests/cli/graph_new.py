"""The next version of graph_old.py's shop workflow, with one change of every kind `conveyor graph diff` names:
PACKED renumbered (3 -> 6), SHIPPED renamed DISPATCHED (4), REFUNDED removed, CANCELLED added, and a packed order
dispatched by a callback (the carrier's) instead of a step. Runs stored at 3 are stranded by it."""

from __future__ import annotations

import enum

from pydantic import BaseModel

from conveyor import Builder, Run


class Order(BaseModel):
    id: str = ""


class Status(enum.IntEnum):
    PLACED = 1
    PAID = 2
    DISPATCHED = 4
    PACKED = 6
    CANCELLED = 7


def pay(run: Run[Order, Status]) -> Status:
    return Status.PAID


def pack(run: Run[Order, Status]) -> Status:
    return Status.PACKED


def dispatched(run: Run[Order, Status], payload: bytes) -> Status:
    return Status.DISPATCHED


builder = Builder("shop", Order, Status)
builder.add_step(Status.PLACED, pay, Status.PAID, Status.CANCELLED)
builder.add_step(Status.PAID, pack, Status.PACKED)
builder.add_callback(Status.PACKED, dispatched, Status.DISPATCHED)
