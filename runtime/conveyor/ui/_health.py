"""The probes of `conveyor ui` in a pod (the Helm chart's `ui.enabled`): `/healthz` for liveness and `/readyz` for
readiness, so a Service only sends people to a UI that can show them runs.

Liveness is answered by the event loop alone: a UI whose database is down is still alive, and restarting it would
not bring the database back. Readiness asks the record store one cheap question (the lookup of a run id that is
never stored: one primary-key probe in Postgres) under a short deadline; an answer, even "no such run", is ready,
anything else is 503 with one line saying why. Both are plain text, as the workers' probes are, and pass the
app's host check like every route: the kubelet and Prometheus address a pod by its IP, which it accepts."""

from __future__ import annotations

import asyncio

from aiohttp import web

from conveyor._core.ports import RecordStore
from conveyor.errors import RecordNotFound, WorkflowNotRunning
from conveyor.ui._api import CONTEXT

# Well under the chart's probe timeout (5 s), so the kubelet hears the reason instead of timing out itself.
READY_TIMEOUT = 2.0
# Not a UUID, so no run can ever have it: the lookup always misses, and only costs an index probe.
PROBE_RUN_ID = "conveyor-ui-readiness-probe"
_REASON_LIMIT = 300


def routes() -> list[web.RouteDef]:
    return [web.get("/healthz", healthz), web.get("/readyz", readyz)]


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    reason = await unready(request.app[CONTEXT].store, READY_TIMEOUT)
    if reason is None:
        return web.Response(text="ready\n")
    return web.Response(status=503, text=f"{reason}\n")


async def unready(store: RecordStore, timeout: float) -> str | None:
    """None when `store` answers a lookup within `timeout` seconds, else why not, in one line."""
    try:
        async with asyncio.timeout(timeout) as deadline:
            await store.lookup(PROBE_RUN_ID)
    except RecordNotFound:
        return None
    except WorkflowNotRunning:
        return "not ready: the record store is not open yet"
    except TimeoutError as e:
        if deadline.expired():
            return f"not ready: the record store did not answer within {timeout:g} s"
        return _failed(e)  # the store's own timeout (a pool's, a driver's): its message says which
    except Exception as e:
        return _failed(e)
    return None


def _failed(error: Exception) -> str:
    text = str(error).strip()
    line = f"not ready: the record store failed: {type(error).__name__}"
    if text:
        line += f": {text.splitlines()[0].strip()}"
    return line if len(line) <= _REASON_LIMIT else line[:_REASON_LIMIT] + "…"
