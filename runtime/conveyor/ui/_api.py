"""The UI's JSON API under /api: what the pages show, for scripts, in the shapes `conveyor runs -o json` and
`conveyor graph -o json` give. Errors are JSON too, `{"error": ..., "field": ...}` for bad input (400), with 403
for refused actions, 404 for unknown runs and paths, 405 for a method a path does not take, 409 for a state change
the run's state does not allow and 503 for a failing store; the middleware in _app turns the exceptions into those
answers."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from conveyor._engine.checks import MAX_REASON
from conveyor._engine.run_data import workflow_data
from conveyor._engine.run_filters import text
from conveyor.errors import InvalidInput
from conveyor.ui import _query
from conveyor.ui._context import Context
from conveyor.ui._csrf import HEADER
from conveyor.ui._openapi import document
from conveyor.ui._waiting import PAUSED_SHOWN, path, status_rows

CONTEXT = web.AppKey("context", Context)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/runs", list_runs),
        web.get("/api/runs/{run_id}", show_run),
        # Before the run controls' route, which would take "fork" for an action name.
        web.post("/api/runs/{run_id}/fork", fork),
        web.post("/api/runs/{run_id}/{action}", act),
        web.get("/api/workflows", list_workflows),
        web.get("/api/workflows/{name}", show_workflow),
        web.get("/api/csrf", csrf_token),
        web.get("/api/openapi.json", openapi),
    ]


async def openapi(request: web.Request) -> web.Response:
    _query.no_parameters(request.query)
    return web.json_response(document())


async def list_runs(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    query = _query.list_query(request.query, ctx.workflows)
    page = await ctx.page(query)
    return web.json_response(
        {
            "runs": [ctx.run_data(r) for r in page.records],
            "next_cursor": page.next_cursor,
            "prev_cursor": page.prev_cursor,
            "limit": query.limit,
        }
    )


async def show_run(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    _query.no_parameters(request.query)
    run_id = _query.run_id(request.match_info["run_id"])
    record, history = await ctx.run(run_id)
    return web.json_response(
        {
            "run": ctx.run_data(record),
            "history": [ctx.run_data(h) for h in history],
            "path": path(ctx.workflows.get(record.workflow_name), history),
            "actions": ctx.actions(record) if ctx.allow_actions else [],
        }
    )


async def list_workflows(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    _query.no_parameters(request.query)
    return web.json_response({"workflows": [workflow_data(spec) for spec in ctx.workflows.values()]})


async def show_workflow(request: web.Request) -> web.Response:
    """Where the workflow's runs wait: its active runs per status and run state, with the oldest's age and the lag
    alert it is held to, and the newest paused runs."""
    ctx = request.app[CONTEXT]
    _query.no_parameters(request.query)
    waiting = await ctx.waiting(_query.workflow_name(request.match_info["name"]))
    return web.json_response(
        {
            "workflow": workflow_data(waiting.spec),
            "now": waiting.now.isoformat(),
            "statuses": status_rows(waiting.spec, waiting.counts, waiting.now),
            "paused": [ctx.run_data(r) for r in waiting.paused],
            "paused_limit": PAUSED_SHOWN,
        }
    )


async def csrf_token(request: web.Request) -> web.Response:
    """The token an API client sends back in X-CSRF-Token with the cookie this sets."""
    ctx = request.app[CONTEXT]
    _query.no_parameters(request.query)
    token = ctx.csrf.token_for(request)
    response = web.json_response({"token": token, "header": HEADER})
    ctx.csrf.set_cookie(request, response, token)
    return response


def _acting(request: web.Request) -> Context:
    """The context of an action request that may act: actions allowed, and past the cross-site checks."""
    ctx = request.app[CONTEXT]
    ctx.require_actions()
    ctx.csrf.check(request, request.headers.get(HEADER, ""))
    return ctx


async def act(request: web.Request) -> web.Response:
    ctx = _acting(request)
    run_id = _query.run_id(request.match_info["run_id"])
    action = _query.action(request.match_info["action"])
    reason = await _reason(request)
    record = await ctx.control(run_id, action, reason)
    return web.json_response({"run": ctx.run_data(record)})


async def fork(request: web.Request) -> web.Response:
    """Fork a stopped run: the new run (201) and the old one as it is now (cancelled, if it was paused)."""
    ctx = _acting(request)
    run_id = _query.run_id(request.match_info["run_id"])
    status, replacement = _query.fork_body(
        await _json_body(request, '{"status": "PAID"}') if request.can_read_body else {}
    )
    forked, old = await ctx.fork(run_id, status, replacement)
    return web.json_response({"run": ctx.run_data(forked), "forked_from": ctx.run_data(old)}, status=201)


async def _json_body(request: web.Request, example: str) -> Any:
    try:
        return json.loads(await request.read())
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("body", f"a JSON object such as {example}", "a body that is not JSON") from None


async def _reason(request: web.Request) -> str:
    """The optional JSON body `{"reason": "..."}`."""
    if not request.can_read_body:
        return ""
    body = await _json_body(request, '{"reason": "..."}')
    if not isinstance(body, dict) or set(body) - {"reason"}:
        raise InvalidInput("body", 'a JSON object with at most the key "reason"', body)
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise InvalidInput("reason", "a string", reason)
    return text("reason", reason, max_length=MAX_REASON, allow_newlines=True)
