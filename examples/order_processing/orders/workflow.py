"""An order moves from CREATED to FULFILLED: pay, reserve stock, ship. A declined payment is retried once, then
the order is cancelled; an order whose stock ran out is refunded.

`builder` is the entrypoint (`orders.workflow:builder`) that `conveyor graph` and the operator's Workflow
manifest load. conveyor ships this very file as its demo (`conveyor/cli/_demo_orders.py` links here; a wheel holds
a copy), which `conveyor demo` and `conveyor ui --demo` run wherever conveyor is installed.
"""

from __future__ import annotations

import enum

from pydantic import BaseModel

from conveyor import Builder, Run


class Order(BaseModel):
    id: str = ""
    amount_cents: int = 0
    items: int = 1
    paid: bool = False
    payment_attempts: int = 0
    reserved: bool = False
    refunded: bool = False
    tracking_code: str = ""


class OrderStatus(enum.IntEnum):
    CREATED = 1
    PAID = 2
    PAYMENT_FAILED = 3
    FULFILLED = 4
    INVENTORY_RESERVED = 5
    OUT_OF_STOCK = 6
    REFUNDED = 7
    CANCELLED = 8


# The "card limit" and "stock" stand in for a payment gateway and a warehouse.
CARD_LIMIT_CENTS = 50_000
STOCK_PER_ORDER = 3


async def process_payment(run: Run[Order, OrderStatus]) -> OrderStatus:
    run.object.payment_attempts += 1
    if run.object.amount_cents > CARD_LIMIT_CENTS:
        return OrderStatus.PAYMENT_FAILED
    run.object.paid = True
    return OrderStatus.PAID


async def retry_payment(run: Run[Order, OrderStatus]) -> OrderStatus:
    # A second try with half the amount charged now and half on delivery; more than that is cancelled.
    run.object.payment_attempts += 1
    if run.object.amount_cents // 2 > CARD_LIMIT_CENTS:
        return OrderStatus.CANCELLED
    run.object.paid = True
    return OrderStatus.PAID


def reserve_inventory(run: Run[Order, OrderStatus]) -> OrderStatus:
    # A plain function: conveyor runs it in a worker thread.
    if run.object.items > STOCK_PER_ORDER:
        return OrderStatus.OUT_OF_STOCK
    run.object.reserved = True
    return OrderStatus.INVENTORY_RESERVED


async def refund(run: Run[Order, OrderStatus]) -> OrderStatus:
    run.object.refunded = True
    return OrderStatus.REFUNDED


async def fulfil(run: Run[Order, OrderStatus]) -> OrderStatus:
    run.object.tracking_code = f"TRK-{run.object.id.upper()}"
    return OrderStatus.FULFILLED


builder: Builder[Order, OrderStatus] = Builder("order-processing", Order, OrderStatus)
builder.add_step(OrderStatus.CREATED, process_payment, OrderStatus.PAID, OrderStatus.PAYMENT_FAILED).with_options(
    parallel_count=2
)
builder.add_step(OrderStatus.PAYMENT_FAILED, retry_payment, OrderStatus.PAID, OrderStatus.CANCELLED)
builder.add_step(OrderStatus.PAID, reserve_inventory, OrderStatus.INVENTORY_RESERVED, OrderStatus.OUT_OF_STOCK)
builder.add_step(OrderStatus.OUT_OF_STOCK, refund, OrderStatus.REFUNDED)
builder.add_step(OrderStatus.INVENTORY_RESERVED, fulfil, OrderStatus.FULFILLED)


def sample_orders() -> list[Order]:
    """The demo's orders: two go straight through, one needs a second payment try, one is out of stock, one is
    cancelled."""
    return [
        Order(id="order-1", amount_cents=2_500, items=1),
        Order(id="order-2", amount_cents=12_000, items=2),
        Order(id="order-3", amount_cents=80_000, items=1),
        Order(id="order-4", amount_cents=4_000, items=5),
        Order(id="order-5", amount_cents=250_000, items=1),
    ]
