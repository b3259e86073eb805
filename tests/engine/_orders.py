"""A small order workflow shared by the engine tests."""

from __future__ import annotations

import enum

from pydantic import BaseModel

from conveyor import Builder, Run
from conveyor._engine.spec import WorkflowSpec


class Order(BaseModel):
    id: str = ""
    amount: int = 0
    paid: bool = False
    notes: list[str] = []


class Status(enum.IntEnum):
    CREATED = 1
    PAID = 2
    PAYMENT_FAILED = 3
    FULFILLED = 4
    SHIPPED = 5
    DELIVERED = 6
    EXPIRED = 7


class Other(enum.IntEnum):
    CREATED = 1
    DONE = 2


def _pay(run: Run[Order, Status]) -> Status:
    return Status.PAID


def payment_spec(name: str = "orders") -> WorkflowSpec[Order, Status]:
    """CREATED, then PAID or PAYMENT_FAILED: the smallest graph with a start and two ends."""
    b = Builder(name, Order, Status)
    b.add_step(Status.CREATED, _pay, Status.PAID, Status.PAYMENT_FAILED)
    return b.spec()
