"""Leader election for the operator: kopf has none of its own (its peering only freezes equal-priority replicas),
so the operator runs kopf only while it holds a Kubernetes Lease, through the same LeaseRoleScheduler the
workers hold their roles with.

A standby waits on the Lease (serving its health endpoints meanwhile); the leader runs kopf. A leader that can no
longer renew stops kopf at once and exits non-zero, so its pod restarts clean and waits as a standby: the Lease
scheduler gives up the role well before another replica may take it, so two leaders never act together. A clean
stop (SIGTERM) lets kopf finish and releases the Lease, so the standby takes over at its next look.

A leader that keeps its Lease but cannot do its job (its kopf has had no answer from the API server for a while,
`_reach`) steps back: it stops kopf as on a clean stop, releases the Lease and exits non-zero, so that a standby,
which may well reach the API server, takes over at once, and its own pod restarts clean. Exiting rather than
waiting in-process is what a lost Lease does too, and what client-go's leader election users do.

The log says what each replica is: one line on entering standby (naming the holder, again when it changes, never
per poll), one on leading, one on no longer leading (and why).

The Lease is made at run time, so Helm does not know it and `helm uninstall` would leave it behind. Given its own
Deployment's name (`owner`; the chart passes it), the operator reads the Deployment's uid once at start and has
the Lease owned by it: Kubernetes' garbage collector deletes the Lease once the Deployment is gone, also one that a
replica on its way out re-created during the uninstall (its owner is gone by then). A Deployment that cannot be
read (not there, not allowed) only costs that: a warning, and a Lease without an owner."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from conveyor.adapters.kubernetes import LeaseRoleScheduler

# The Lease scheduler's own way to the API server (a kubeconfig, else the pod's service account), so that the
# Deployment is read where the Lease is written.
from conveyor.adapters.kubernetes._client import load_configuration
from conveyor.errors import ServiceUnavailable

logger = logging.getLogger("conveyor_operator.leader")
# Reading the owner Deployment: an API server that does not answer is waited for this long (it answered the Lease
# scheduler's check a moment before), each request for at most REQUEST_TIMEOUT, a retry every RETRY.
OWNER_PATIENCE = 30.0
REQUEST_TIMEOUT = 5.0
RETRY = 2.0


class LeadershipLost(Exception):
    """The Lease could not be renewed: this replica stopped acting and must restart as a standby."""


class SteppedBack(Exception):
    """This leader could not do its job (`step_back` said why): it stopped kopf and released the Lease, so that a
    standby takes over, and must restart as a standby."""


async def lead(
    run: Callable[[asyncio.Event], Awaitable[None]],
    *,
    lease: str,
    namespace: str,
    lease_duration: timedelta,
    identity: str | None,
    on_state: Callable[[str], None] = lambda state: None,
    step_back: Callable[[], Awaitable[str]] | None = None,
    owner: str | None = None,
) -> None:
    """Wait for the Lease `namespace/lease`, then `await run(stop)` while it is held. Raises LeadershipLost if the
    Lease is lost while `run` is running (`run` is cancelled at once). If `step_back()` returns (with a reason)
    first, `stop` is set, `run` gets a lease duration to finish (then is cancelled), the Lease is released and
    SteppedBack is raised. Logs once on entering standby (and when the holder waited for changes), on leading and
    on no longer leading. `owner`: the name of the operator's Deployment in `namespace`, made the Lease's owner
    (see the module's docstring)."""
    where = f"{namespace}/{lease}"

    def waiting(_: str, holder: str) -> None:
        logger.info("standby: Lease %s is held by %s; waiting to lead as %s", where, holder, scheduler.identity)

    reference = await deployment_owner(owner, namespace, lease=where) if owner else None
    scheduler = LeaseRoleScheduler(
        namespace, lease_duration=lease_duration, identity=identity, on_waiting=waiting, owner=reference
    )
    await scheduler.open()
    stop = asyncio.Event()
    try:
        on_state(f"standby: waiting for Lease {where}")
        async with scheduler.hold(lease) as held:
            logger.info("leading as %s (Lease %s)", scheduler.identity, where)
            on_state("leading")
            try:
                await _while_held(run, stop, held.wait_lost, step_back, lease_duration.total_seconds(), on_state, where)
            except LeadershipLost as e:
                logger.warning("no longer leading: %s", e)
                raise
            except SteppedBack as e:
                # Raised inside the hold, which releases the Lease on the way out: a standby takes it at once.
                logger.warning("no longer leading: stepped back (%s); releasing Lease %s", e, where)
                raise
            except Exception as e:
                logger.warning("no longer leading: kopf failed (%r); releasing Lease %s", e, where)
                raise
            except asyncio.CancelledError:
                logger.info("no longer leading: cancelled; releasing Lease %s", where)
                raise
            logger.info("no longer leading: stopped; releasing Lease %s", where)
    finally:
        await scheduler.close()


async def deployment_owner(
    name: str, namespace: str, *, lease: str, patience: float = OWNER_PATIENCE
) -> dict[str, str] | None:
    """The owner reference of the Deployment `namespace/name`, for the Lease `lease`; None, with a warning, if the
    Deployment is not there or may not be read (the Lease then outlives the Deployment). An API server that does
    not answer is retried for `patience` seconds, then ServiceUnavailable is raised, as when the Lease scheduler
    cannot reach it at start."""
    what = f"Deployment {namespace}/{name}"
    configuration = await asyncio.to_thread(load_configuration, None, None)
    api = client.ApiClient(configuration)
    deadline = time.monotonic() + patience
    try:
        apps = client.AppsV1Api(api)
        while True:
            try:
                found = await asyncio.to_thread(
                    apps.read_namespaced_deployment, name, namespace, _request_timeout=REQUEST_TIMEOUT
                )
                break
            except ApiException as e:
                status = e.status or 0
                if status and status != 429 and status < 500:
                    logger.warning(
                        "the Lease %s gets no owner, so it outlives the operator's Deployment (an uninstall leaves it"
                        " behind): %s cannot be read (HTTP %s %s)",
                        lease,
                        what,
                        status,
                        e.reason,
                    )
                    return None
                why = f"HTTP {status} {e.reason}"
            except (urllib3.exceptions.HTTPError, OSError) as e:
                why = str(e) or type(e).__name__
            if time.monotonic() + RETRY > deadline:
                raise ServiceUnavailable("Kubernetes API server", configuration.host, f"read {what}: {why}")
            logger.warning("reading %s, the Lease's owner: %s; retrying", what, why)
            await asyncio.sleep(RETRY)
    finally:
        await asyncio.to_thread(api.close)
    metadata = found.metadata
    assert metadata is not None and metadata.uid and metadata.name
    logger.info("the Lease %s is owned by %s (uid %s): it goes with it", lease, what, metadata.uid)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": metadata.name, "uid": metadata.uid}


async def _while_held(
    run: Callable[[asyncio.Event], Awaitable[None]],
    stop: asyncio.Event,
    wait_lost: Callable[[], Awaitable[None]],
    step_back: Callable[[], Awaitable[str]] | None,
    grace: float,
    on_state: Callable[[str], None],
    where: str,
) -> None:
    work = asyncio.ensure_future(run(stop))
    lost = asyncio.ensure_future(wait_lost())
    unfit = asyncio.ensure_future(step_back() if step_back is not None else _forever())
    why: str | None = None
    try:
        await asyncio.wait({work, lost, unfit}, return_when=asyncio.FIRST_COMPLETED)
        if not (work.done() or lost.done()):
            why = unfit.result()
            on_state(f"stepping back: {why}")
            # Still the holder: `run` may finish what it does (kopf stops gracefully) for as long as a crash would
            # have kept the Lease, unless the Lease is lost meanwhile.
            stop.set()
            await asyncio.wait({work, lost}, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        was_lost = lost.done()
    except BaseException:
        # Cancelled (or step_back failed): `run` never outlives the hold, which is about to end.
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await work
        raise
    finally:
        lost.cancel()
        unfit.cancel()
    if not work.done():
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        if why is None or was_lost:
            raise LeadershipLost(f"lost Lease {where}; stopped acting at once")
    if why is not None:
        if not work.cancelled() and work.exception() is not None:
            logger.warning("kopf stopped with an error while stepping back: %r", work.exception())
        raise SteppedBack(why)
    work.result()


async def _forever() -> str:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


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
