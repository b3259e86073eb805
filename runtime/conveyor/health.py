"""HTTP endpoints for Kubernetes and Prometheus, served by every long-running conveyor process (`conveyor worker`,
`conveyor-operator`): `/healthz` (liveness: answered by the event loop itself, so a wedged loop fails it),
`/readyz` (readiness: 503 with the reason until the caller says it is ready) and `/metrics` (the
prometheus_client registry, where the engine records its metrics).

The engine never imports this: it records metrics and reports its processes' states, but serving them is the
business of the process that runs it."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

__all__ = ["HealthServer"]


class HealthServer:
    """`readiness()` returns None when ready, else a short reason served with the 503."""

    def __init__(
        self,
        host: str,
        port: int,
        readiness: Callable[[], str | None],
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.host = host
        self.port = port
        self._readiness = readiness
        self._registry = registry
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen (OSError if the address cannot be bound)."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        reason = self._readiness()
        if reason is None:
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"{reason}\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self._registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
