"""A small order workflow shared by the engine tests."""

from __future__ import annotations

import enum

from pydantic import BaseModel


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
