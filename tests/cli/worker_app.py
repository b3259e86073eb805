"""A small workflow for the `conveyor worker` tests: tickets are triaged, then closed. The entrypoint
`worker_app:builder` is a function, so each test gets a workflow of its own name ($WORKER_APP_NAME) and nothing
(Leases, Kafka groups, runs) is shared between tests; each step notes which worker ($POD_NAME) handled it.
With $WORKER_APP_SLOW_DIR set, triage marks a file there when it starts and then takes two seconds."""

from __future__ import annotations

import enum
import os
import time
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel

from conveyor import Builder, Run


class Ticket(BaseModel):
    id: str = ""
    triaged_by: str = ""
    closed_by: str = ""


class TicketStatus(enum.IntEnum):
    OPENED = 1
    TRIAGED = 2
    CLOSED = 3


def triage(run: Run[Ticket, TicketStatus]) -> TicketStatus:
    slow = os.environ.get("WORKER_APP_SLOW_DIR")
    if slow:  # say the step has started, then take a while (a plain function: it runs in a worker thread)
        (Path(slow) / run.foreign_id).touch()
        time.sleep(2)
    run.object.triaged_by = os.environ.get("POD_NAME", "")
    return TicketStatus.TRIAGED


async def close(run: Run[Ticket, TicketStatus]) -> TicketStatus:
    run.object.closed_by = os.environ.get("POD_NAME", "")
    return TicketStatus.CLOSED


def make(name: str) -> Builder[Ticket, TicketStatus]:
    b = Builder(name, Ticket, TicketStatus)
    # The manifest of the tests overrides this with parallelCount 1.
    b.add_step(TicketStatus.OPENED, triage, TicketStatus.TRIAGED).with_options(
        parallel_count=2, err_backoff=timedelta(milliseconds=200)
    )
    b.add_step(TicketStatus.TRIAGED, close, TicketStatus.CLOSED)
    return b


def builder() -> Builder[Ticket, TicketStatus]:
    return make(os.environ.get("WORKER_APP_NAME", "worker-app"))
