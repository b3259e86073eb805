"""The aiohttp application of `conveyor ui`: the pages, the JSON API, Prometheus `/metrics`, the probes `/healthz`
and `/readyz` (_health), and one middleware that turns the errors a request can cause into answers (400 bad input
naming the field, 403 refused, 404 unknown run, workflow or path, 405 a method a path does not take, 409 a
transition the run's state does not allow, 413 a body too large, 503 the store is unreachable) as JSON under /api
and as a page elsewhere, so an API client never has to parse aiohttp's plain-text answers. Anything else is a bug
and stays a 500."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from conveyor._core.clock import Clock
from conveyor._core.ports import RecordStore
from conveyor._engine.spec import WorkflowSpec
from conveyor.errors import (
    ForkRefused,
    InvalidInput,
    InvalidTransition,
    RecordNotFound,
    ServiceUnavailable,
    VersionConflict,
    WorkflowInProgress,
    WorkflowNotRunning,
)
from conveyor.ui import _api, _health, _pages
from conveyor.ui._context import Context, StoreFailed, UnknownWorkflow
from conveyor.ui._csrf import Csrf, Forbidden, check_host, host_names
from conveyor.ui._server import HANDLER_ARGS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_MESSAGE_LIMIT = 600


def make_app(
    store: RecordStore,
    *,
    workflows: Mapping[str, WorkflowSpec[Any, Any]] | Iterable[WorkflowSpec[Any, Any]] = (),
    allow_actions: bool = False,
    clock: Clock | None = None,
    registry: CollectorRegistry = REGISTRY,
    allowed_hosts: Iterable[str] = (),
) -> web.Application:
    """The UI over `store` (any RecordStore, opened and closed by the caller). `workflows` (specs, e.g.
    `builder.spec()`) give status names and graphs; runs of other workflows are still listed. Pause, resume,
    cancel and delete are refused (403) unless `allow_actions`. Requests must address the UI by IP address,
    `localhost` or one of `allowed_hosts` (host names; "*" for any), against DNS rebinding."""
    if not isinstance(store, RecordStore):
        raise InvalidInput("store", "a RecordStore", store)
    pairs = list(workflows.items()) if isinstance(workflows, Mapping) else [(None, spec) for spec in workflows]
    specs: dict[str, WorkflowSpec[Any, Any]] = {}
    for name, spec in pairs:
        if not isinstance(spec, WorkflowSpec):
            raise InvalidInput("workflows", "WorkflowSpec objects (builder.spec())", spec)
        specs[spec.name] = spec
        if name is not None and name != spec.name:
            raise InvalidInput("workflows", f"the spec of {name!r} under its own name", spec.name)
    if not isinstance(allow_actions, bool):
        raise InvalidInput("allow_actions", "True or False", allow_actions)
    hosts = host_names(allowed_hosts)
    app = web.Application(middlewares=[_errors], handler_args=HANDLER_ARGS)
    app[_api.CONTEXT] = Context(store, specs, allow_actions, clock, Csrf(), hosts)
    app[_REGISTRY] = registry
    app.add_routes(_api.routes())
    app.add_routes(_pages.routes())
    app.add_routes(_health.routes())
    app.router.add_get("/metrics", _metrics)
    return app


_REGISTRY = web.AppKey("registry", CollectorRegistry)


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[_REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _answer(
    request: web.Request,
    status: int,
    title: str,
    message: str,
    field: str | None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    if len(message) > _MESSAGE_LIMIT:
        message = message[:_MESSAGE_LIMIT] + "…"
    if request.path.startswith("/api/"):
        body: dict[str, Any] = {"error": message}
        if field is not None:
            body["field"] = field
        response = web.json_response(body, status=status)
    else:
        response = _pages.render(request, "error.html", status=status, title=title, message=message)
    response.headers.update(headers or {})
    return response


def _http_error(request: web.Request, error: web.HTTPException) -> web.Response:
    """aiohttp's own refusals (no such route, a method the route does not take, a body over the size limit)."""
    if error.status == 404:
        message = f"nothing here: {request.path}"
    elif error.status == 405:
        message = f"{request.method} is not allowed here (allowed: {error.headers.get('Allow', 'none')})"
    else:
        message = error.reason.lower()
    # Allow tells a client what a 405'd path takes; the rest of the headers described aiohttp's text answer.
    kept = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else {}
    return _answer(request, error.status, error.reason, message, None, kept)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        check_host(request, request.app[_api.CONTEXT].allowed_hosts)
        return await handler(request)
    except InvalidInput as e:
        return _answer(request, 400, "Bad request", str(e), e.field)
    except Forbidden as e:
        return _answer(request, 403, "Refused", f"refused: {e}", None)
    except RecordNotFound as e:
        return _answer(request, 404, "Not found", str(e), None)
    except UnknownWorkflow as e:
        return _answer(request, 404, "Not found", str(e), None)
    except (InvalidTransition, VersionConflict, ForkRefused, WorkflowInProgress) as e:
        return _answer(request, 409, "Conflict", str(e), None)
    except (ServiceUnavailable, StoreFailed) as e:
        return _answer(request, 503, "Record store unavailable", str(e), None)
    except WorkflowNotRunning:
        # `conveyor ui --wait-for-store` serves before the database answers: the store opens later.
        return _answer(request, 503, "Record store unavailable", "the record store is not open yet", None)
    except web.HTTPException as e:
        if e.status < 400:  # the redirect after a form's action
            raise
        return _http_error(request, e)
