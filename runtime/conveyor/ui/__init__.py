"""The web UI of `conveyor ui`: runs with filters and keyset paging, a run's object, history and workflow graph,
and (when enabled) CSRF-safe pause, resume, cancel and delete, over any RecordStore; plus a JSON API under /api
and Prometheus `/metrics`.

    app = make_app(store, workflows=[builder.spec()], allow_actions=True)
    aiohttp.web.run_app(app, host="127.0.0.1", port=8080)
"""

from conveyor.ui._app import make_app

__all__ = ["make_app"]
