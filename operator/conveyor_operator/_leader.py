"""Leader election for the operator: kopf has none of its own (its peering only freezes equal-priority replicas),
so the operator runs kopf only while it holds a Kubernetes Lease, through the same LeaseRoleScheduler the
workers hold their roles with.

A standby waits on the Lease (serving its health endpoints meanwhile); the leader runs kopf. A leader that can no
longer renew stops kopf at once and exits non-zero, so its pod restarts clean and waits as a standby: the Lease
scheduler gives up the role well before another replica may take it, so two leaders never act together. A clean
stop (SIGTERM) lets kopf finish and releases the Lease, so the standby takes over at its next look."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

from conveyor.adapters.kubernetes import LeaseRoleScheduler

logger = logging.getLogger("conveyor_operator.leader")


class LeadershipLost(Exception):
    """The Lease could not be renewed: this replica stopped acting and must restart as a standby."""


async def lead(
    run: Callable[[asyncio.Event], Awaitable[None]],
    *,
    lease: str,
    namespace: str,
    lease_duration: timedelta,
    identity: str | None,
    on_state: Callable[[str], None] = lambda state: None,
) -> None:
    """Wait for the Lease `namespace/lease`, then `await run(stop)` while it is held. `stop` is set when the process
    is asked to stop while leading. Raises LeadershipLost if the Lease is lost while `run` is running."""
    scheduler = LeaseRoleScheduler(namespace, lease_duration=lease_duration, identity=identity)
    await scheduler.open()
    stop = asyncio.Event()
    try:
        on_state(f"standby: waiting for Lease {namespace}/{lease}")
        async with scheduler.hold(lease) as held:
            logger.info("leading as %s (Lease %s/%s)", scheduler.identity, namespace, lease)
            on_state("leading")
            work = asyncio.ensure_future(run(stop))
            lost = asyncio.ensure_future(held.wait_lost())
            try:
                await asyncio.wait({work, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                lost.cancel()
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
                raise LeadershipLost(f"lost Lease {namespace}/{lease}; stopped acting at once")
            work.result()
    finally:
        await scheduler.close()


@contextlib.asynccontextmanager
async def until_signalled() -> AsyncIterator[None]:
    """SIGTERM/SIGINT cancel the block (a standby's wait, the start-up): installed before anything else, so a
    signal never finds the process without a handler. kopf installs its own while it runs."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
