"""The HTML pages: the runs list (filters, keyset paging), a run (fields, object, workflow graph with the run's path,
history, action buttons when enabled), the workflows' graphs, and a workflow's page of where its runs wait. Plain
server-rendered HTML with forms: no JavaScript, so the pages work in any browser and the only state-changing
requests are CSRF-checked form posts."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web

from conveyor._core.runstate import RunState
from conveyor._engine.run_data import workflow_data
from conveyor._engine.run_filters import RUN_STATES
from conveyor._engine.visualise import mermaid
from conveyor.ui import _query
from conveyor.ui._api import CONTEXT
from conveyor.ui._context import object_text
from conveyor.ui._graph import svg
from conveyor.ui._templates import TEMPLATES
from conveyor.ui._waiting import ACTIVE, PAUSED_SHOWN, path, status_rows

ENV = jinja2.Environment(
    loader=jinja2.DictLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(iso: str) -> str:
    """An ISO timestamp as a person scans a column of them: UTC, to the millisecond."""
    moment = datetime.fromisoformat(iso).astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d} UTC"


def _state_label(name: str) -> str:
    """A run state's name as the reference displays it ("Requested Data Deleted")."""
    return RunState[name].label


def _path_segment(value: str) -> str:
    """A run id as one segment of a path. jinja's urlencode leaves "/" as it is (right in a query, wrong here): a
    run id holding one would link to another route."""
    return quote(value, safe="")


def _age(seconds: float) -> str:
    """A wait as a person reads it: its two largest units ("3h 12m", "45s")."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n]
    return " ".join(shown[:2]) if shown else f"{seconds:.1f}s"


ENV.filters["when"] = _when
ENV.filters["age"] = _age
ENV.filters["state_label"] = _state_label
ENV.filters["path_segment"] = _path_segment


def routes() -> list[web.RouteDef]:
    return [
        web.get("/", runs_page),
        web.get("/runs/{run_id}", run_page),
        web.post("/runs/{run_id}/fork", fork),
        web.post("/runs/{run_id}/{action}", act),
        web.get("/workflows", workflows_page),
        web.get("/workflows/{name}", workflow_page),
    ]


def render(request: web.Request, template: str, *, status: int = 200, **values: object) -> web.Response:
    ctx = request.app[CONTEXT]
    token = ctx.csrf.token_for(request)
    html = ENV.get_template(template).render(csrf_token=token, **values)
    response = web.Response(text=html, content_type="text/html", status=status)
    # Pages are never framed by other sites (clickjacking the action buttons) and run no script at all.
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'"
    )
    response.headers["Referrer-Policy"] = "same-origin"
    ctx.csrf.set_cookie(request, response, token)
    return response


def _href(params: list[tuple[str, str]]) -> str:
    return "/?" + urlencode(params) if params else "/"


async def runs_page(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    query = _query.list_query(request.query, ctx.workflows)
    page = await ctx.page(query)
    runs = [ctx.run_data(r, with_object=False) for r in page.records]
    spec = ctx.workflows.get(query.workflow) if query.workflow else None
    names = []
    for value in query.statuses:
        try:
            names.append(spec.status_type(value).name if spec else str(value))
        except ValueError:
            names.append(str(value))
    return render(
        request,
        "runs.html",
        query=query,
        runs=runs,
        workflows=sorted(ctx.workflows),
        run_states=RUN_STATES,
        status_text=", ".join(names),
        max_limit=_query.MAX_LIMIT,
        ascending=query.order.name == "ASCENDING",
        next_href=_href(query.params(cursor=page.next_cursor, before=None)) if page.next_cursor else None,
        prev_href=_href(query.params(cursor=None, before=page.prev_cursor)) if page.prev_cursor else None,
        first_href=_href(query.params(cursor=None, before=None)),
    )


async def run_page(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    _query.no_parameters(request.query)
    run_id = _query.run_id(request.match_info["run_id"])
    record, history = await ctx.run(run_id)
    spec = ctx.workflows.get(record.workflow_name)
    taken = path(spec, history)
    return render(
        request,
        "run.html",
        run=ctx.run_data(record),
        object_text=object_text(record.object),
        # The history table shows no objects: decoding every version's would be wasted on a long-lived run.
        history=[ctx.run_data(h, with_object=False) for h in reversed(history)],
        allow_actions=ctx.allow_actions,
        actions=ctx.actions(record),
        fork_statuses=ctx.fork_statuses(record, history),
        graph=svg(spec, record.status, path=[p["status"] for p in taken]) if spec is not None else None,
        path=taken,
        mermaid=mermaid(spec) if spec is not None else None,
    )


async def workflows_page(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    _query.no_parameters(request.query)
    workflows = [{**workflow_data(spec), "graph": svg(spec)} for spec in ctx.workflows.values()]
    return render(request, "workflows.html", workflows=workflows)


async def workflow_page(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    _query.no_parameters(request.query)
    waiting = await ctx.waiting(_query.workflow_name(request.match_info["name"]))
    rows = status_rows(waiting.spec, waiting.counts, waiting.now)
    graph = svg(
        waiting.spec,
        counts={row["status"]: row["active"] for row in rows},
        late={row["status"] for row in rows if row["over_lag_alert"]},
    )
    return render(
        request,
        "workflow.html",
        wf=workflow_data(waiting.spec),
        graph=graph,
        statuses=rows,
        run_states=[state.name for state in ACTIVE],
        active=sum(row["active"] for row in rows),
        now=waiting.now.isoformat(),
        paused=[ctx.run_data(r, with_object=False) for r in waiting.paused],
        paused_limit=PAUSED_SHOWN,
    )


async def act(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    ctx.require_actions()
    form = _query.action_form(await request.post())
    ctx.csrf.check(request, form.csrf_token)
    run_id = _query.run_id(request.match_info["run_id"])
    action = _query.action(request.match_info["action"])
    await ctx.control(run_id, action, form.reason)
    # Post/redirect/get: reloading the run's page does not post the action again.
    raise web.HTTPSeeOther(f"/runs/{_path_segment(run_id)}")


async def fork(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    ctx.require_actions()
    form = _query.fork_form(await request.post())
    ctx.csrf.check(request, form.csrf_token)
    run_id = _query.run_id(request.match_info["run_id"])
    forked, _ = await ctx.fork(run_id, form.status, form.object)
    # To the new run's page, which says where it came from.
    raise web.HTTPSeeOther(f"/runs/{_path_segment(forked.run_id)}")
