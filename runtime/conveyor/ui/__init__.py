"""The web UI of `conveyor ui`: runs with filters and keyset paging, a run's object, history and workflow graph,
and (when enabled) CSRF-safe pause, resume, cancel and delete, over any RecordStore; plus a JSON API under /api
and Prometheus `/metrics`.

    app = make_app(store, workflows=[builder.spec()], allow_actions=True)
    runner = UIRunner(app)  # aiohttp's AppRunner, with its own refusals under /api answered in JSON too
    await runner.setup()
    await aiohttp.web.TCPSite(runner, "127.0.0.1", 8080).start()
"""

from conveyor.ui._app import make_app
from conveyor.ui._server import UIRunner

__all__ = ["UIRunner", "make_app"]
