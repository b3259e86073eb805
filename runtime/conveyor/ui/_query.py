"""Turning query strings and form posts into checked values. Every request parameter passes through here, so a
bad one is refused with InvalidInput naming it (the app answers 400) before anything reads or writes the store.
The values themselves (run states, statuses, text the store can hold) are read by conveyor._engine.run_filters,
as `conveyor runs` reads its options."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

from multidict import MultiMapping

from conveyor._core.ports import RecordFilter, SortOrder
from conveyor._core.runstate import RunState
from conveyor._engine import run_filters
from conveyor._engine.checks import MAX_REASON
from conveyor._engine.client import CONTROLS
from conveyor._engine.run_filters import MAX_FOREIGN_ID, MAX_NAME, text
from conveyor._engine.spec import WorkflowSpec
from conveyor.errors import InvalidInput

MAX_LIMIT = 200
DEFAULT_LIMIT = 25
MAX_VALUES = 20

LIST_FIELDS = ("workflow", "status", "run_state", "foreign_id", "limit", "cursor", "before", "order")
ACTION_FIELDS = ("csrf_token", "reason")
FORK_FIELDS = ("csrf_token", "status", "object")
# A replacement object typed into the run page's fork form (the store's own limits apply to what is stored).
MAX_OBJECT_TEXT = 1_000_000


@dataclasses.dataclass(frozen=True, slots=True)
class ListQuery:
    """A checked runs-list request."""

    workflow: str | None = None
    statuses: tuple[int, ...] = ()
    run_states: tuple[RunState, ...] = ()
    foreign_ids: tuple[str, ...] = ()
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None
    before: str | None = None
    order: SortOrder = SortOrder.DESCENDING

    def record_filter(self) -> RecordFilter | None:
        if not (self.statuses or self.run_states or self.foreign_ids):
            return None
        return RecordFilter(foreign_ids=self.foreign_ids, statuses=self.statuses, run_states=self.run_states)

    def params(self, **changes: Any) -> list[tuple[str, str]]:
        """The query string that asks for this (with `changes`), for links: empty values left out."""
        query = dataclasses.replace(self, **changes)
        out: list[tuple[str, str]] = []
        if query.workflow is not None:
            out.append(("workflow", query.workflow))
        out.extend(("status", str(s)) for s in query.statuses)
        out.extend(("run_state", s.name) for s in query.run_states)
        out.extend(("foreign_id", f) for f in query.foreign_ids)
        if query.limit != DEFAULT_LIMIT:
            out.append(("limit", str(query.limit)))
        if query.cursor is not None:
            out.append(("cursor", query.cursor))
        if query.before is not None:
            out.append(("before", query.before))
        if query.order is not SortOrder.DESCENDING:
            out.append(("order", "asc"))
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class ActionForm:
    csrf_token: str
    reason: str


def run_id(value: str) -> str:
    """A run id from the path."""
    if not value:
        raise InvalidInput("run_id", "a run id", value)
    return text("run_id", value, max_length=MAX_NAME)


def workflow_name(value: str) -> str:
    """A workflow's name from the path."""
    if not value:
        raise InvalidInput("workflow", "a workflow's name", value)
    return text("workflow", value, max_length=MAX_NAME)


def action(value: str) -> str:
    if value not in CONTROLS:
        raise InvalidInput("action", f"one of {', '.join(CONTROLS)}", value)
    return value


def _values(query: MultiMapping[Any], field: str) -> list[str]:
    values = query.getall(field, [])
    if not all(isinstance(v, str) for v in values):
        raise InvalidInput(field, "a text value (not a file)", "a file")
    # An HTML form sends its empty inputs as `field=`: an empty value means "not given".
    return [v for v in values if v != ""]


def _one(query: MultiMapping[Any], field: str) -> str | None:
    values = _values(query, field)
    if len(values) > 1:
        raise InvalidInput(field, "one value", values)
    return values[0] if values else None


def _many(query: MultiMapping[Any], field: str) -> list[str]:
    values = _values(query, field)
    if len(values) > MAX_VALUES:
        raise InvalidInput(field, f"at most {MAX_VALUES} values", f"{len(values)} values")
    return values


def _split(query: MultiMapping[Any], field: str) -> list[str]:
    """A field given several times, or as one box of comma-separated values: a filter shown in the page's form
    can be submitted again as it stands."""
    values = run_filters.split_values(_many(query, field))
    if len(values) > MAX_VALUES:
        raise InvalidInput(field, f"at most {MAX_VALUES} values", f"{len(values)} values")
    return values


def _only(query: Iterable[str], fields: tuple[str, ...]) -> None:
    unknown = sorted(set(query) - set(fields))
    if unknown:
        # `?=x` has a parameter without a name: there is no field to name, so say what the request lacks.
        field = unknown[0] or "parameter"
        raise InvalidInput(field, f"a known parameter ({', '.join(fields)})", unknown[0])


def no_parameters(query: Iterable[str]) -> None:
    """For pages and endpoints that take none: a parameter given is a mistake worth telling."""
    for name in query:
        raise InvalidInput(name or "parameter", "no query parameters here", name)


def list_query(query: MultiMapping[Any], workflows: Mapping[str, WorkflowSpec[Any, Any]]) -> ListQuery:
    """The runs-list parameters; InvalidInput naming the first bad one."""
    _only(query, LIST_FIELDS)
    workflow = _one(query, "workflow")
    if workflow is not None:
        workflow = text("workflow", workflow, max_length=MAX_NAME)
    spec = workflows.get(workflow) if workflow is not None else None
    statuses = tuple(dict.fromkeys(run_filters.status(s, spec) for s in _split(query, "status")))
    run_states = tuple(dict.fromkeys(run_filters.run_state(s) for s in _split(query, "run_state")))
    foreign_ids = tuple(
        dict.fromkeys(text("foreign_id", f, max_length=MAX_FOREIGN_ID) for f in _many(query, "foreign_id"))
    )
    raw_limit = _one(query, "limit")
    limit = DEFAULT_LIMIT if raw_limit is None else run_filters.integer("limit", raw_limit, 1, MAX_LIMIT)
    cursor = _one(query, "cursor")
    if cursor is not None:
        cursor = text("cursor", cursor, max_length=MAX_NAME)
    before = _one(query, "before")
    if before is not None:
        before = text("before", before, max_length=MAX_NAME)
        if cursor is not None:
            raise InvalidInput("before", "no cursor with it (a page is either after one run or before one)", before)
    raw_order = _one(query, "order")
    if raw_order not in (None, "asc", "desc"):
        raise InvalidInput("order", "asc or desc", raw_order)
    return ListQuery(
        workflow=workflow,
        statuses=statuses,
        run_states=run_states,
        foreign_ids=foreign_ids,
        limit=limit,
        cursor=cursor,
        before=before,
        order=SortOrder.ASCENDING if raw_order == "asc" else SortOrder.DESCENDING,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class ForkForm:
    csrf_token: str
    status: str | None
    object: Any  # None: the object the run had at the status


def fork_form(form: MultiMapping[Any]) -> ForkForm:
    """The run page's fork form: its CSRF token, the status to start at and an optional object as JSON."""
    _only(form, FORK_FIELDS)
    token = _one(form, "csrf_token") or ""
    status = _one(form, "status")
    if status is not None:
        status = text("status", status, max_length=MAX_NAME)
    raw = _one(form, "object")
    return ForkForm(token, status, None if raw is None or not raw.strip() else _json_object(raw))


def fork_body(body: object) -> tuple[str | None, Any]:
    """The JSON body of POST /api/runs/{run_id}/fork: `{"status": name or number, "object": ...}`, both optional."""
    if not isinstance(body, dict) or set(body) - {"status", "object"}:
        raise InvalidInput("body", 'a JSON object with at most the keys "status" and "object"', body)
    status = body.get("status")
    if isinstance(status, bool) or not isinstance(status, str | int | None):
        raise InvalidInput("status", "a status name or number", status)
    if status is not None:
        status = text("status", str(status), max_length=MAX_NAME)
    return status, body.get("object")


def _json_object(raw: str) -> Any:
    if len(raw) > MAX_OBJECT_TEXT:
        raise InvalidInput("object", f"JSON of at most {MAX_OBJECT_TEXT} characters", f"{len(raw)} characters")
    try:
        return json.loads(raw)
    except ValueError as e:
        raise InvalidInput("object", f"the new run's object as JSON ({e})", "text that is not JSON") from None


def action_form(form: MultiMapping[Any]) -> ActionForm:
    """A pause/resume/cancel/delete form post: its CSRF token and optional reason."""
    _only(form, ACTION_FIELDS)
    token = _one(form, "csrf_token") or ""
    reason = _one(form, "reason") or ""
    return ActionForm(token, text("reason", reason, max_length=MAX_REASON, allow_newlines=True))
