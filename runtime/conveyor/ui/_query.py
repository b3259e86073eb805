"""Turning query strings and form posts into checked values. Every request parameter passes through here, so a
bad one is refused with InvalidInput naming it (the app answers 400) before anything reads or writes the store.

Strings are checked for what the store itself would choke on (NUL, unpaired surrogates, absurd lengths): a bad
parameter must be the client's error, never a 500 from the database driver."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from typing import Any

from multidict import MultiMapping

from conveyor._core.ports import RecordFilter, SortOrder
from conveyor._core.runstate import RunState
from conveyor._engine.control import ACTIONS
from conveyor._engine.spec import WorkflowSpec
from conveyor.errors import InvalidInput

MAX_LIMIT = 200
DEFAULT_LIMIT = 25
MAX_NAME = 256
MAX_FOREIGN_ID = 1024
MAX_REASON = 1024
MAX_VALUES = 20
# Postgres `integer` holds the status column.
MAX_STATUS = 2**31 - 1

LIST_FIELDS = ("workflow", "status", "run_state", "foreign_id", "limit", "cursor", "before", "order")
ACTION_FIELDS = ("csrf_token", "reason")


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


def text(field: str, value: str, *, max_length: int, allow_newlines: bool = False) -> str:
    """A string the store can hold and a person can read: at most `max_length` characters, valid Unicode, no
    control characters (newlines and tabs only where `allow_newlines`)."""
    if len(value) > max_length:
        raise InvalidInput(field, f"at most {max_length} characters", f"{len(value)} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(field, "valid Unicode text", value) from None
    allowed = "\n\r\t" if allow_newlines else ""
    if any((ord(c) < 32 and c not in allowed) or ord(c) == 127 for c in value):
        raise InvalidInput(field, "text without control characters", value)
    return value


def run_id(value: str) -> str:
    """A run id from the path."""
    if not value:
        raise InvalidInput("run_id", "a run id", value)
    return text("run_id", value, max_length=MAX_NAME)


def action(value: str) -> str:
    if value not in ACTIONS:
        raise InvalidInput("action", f"one of {', '.join(ACTIONS)}", value)
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


def _only(query: Iterable[str], fields: tuple[str, ...]) -> None:
    unknown = sorted(set(query) - set(fields))
    if unknown:
        # `?=x` has a parameter without a name: there is no field to name, so say what the request lacks.
        field = unknown[0] or "parameter"
        raise InvalidInput(field, f"a known parameter ({', '.join(fields)})", unknown[0])


def _integer(field: str, raw: str, low: int, high: int) -> int:
    # int() alone would take " 7", "+7", "7_000" and non-ASCII digits: only plain ASCII digits are a number here.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise InvalidInput(field, f"an integer from {low} to {high}", raw)
    number = int(raw)
    if not low <= number <= high:
        raise InvalidInput(field, f"an integer from {low} to {high}", raw)
    return number


def _status(raw: str, spec: WorkflowSpec[Any, Any] | None) -> int:
    if raw.isascii() and raw.isdigit():
        return _integer("status", raw, 1, MAX_STATUS)
    if spec is None:
        raise InvalidInput("status", "a status number (status names need a known workflow)", raw)
    members: Mapping[str, enum.IntEnum] = spec.status_type.__members__
    found = members.get(raw.upper())
    if found is None:
        raise InvalidInput("status", f"a number or a status of {spec.name} ({', '.join(members)})", raw)
    return int(found)


def _run_state(raw: str) -> RunState:
    if raw.isascii() and raw.isdigit():
        number = _integer("run_state", raw, 0, max(RunState))
        return RunState(number)
    found = RunState.__members__.get(raw.upper())
    if found is None:
        raise InvalidInput("run_state", f"one of {', '.join(RunState.__members__)} (or its number)", raw)
    return found


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
    # The page's one status box takes "PAID, REFUNDED": names and numbers never hold a comma.
    raw_statuses = [part.strip() for value in _many(query, "status") for part in value.split(",")]
    if len(raw_statuses) > MAX_VALUES:
        raise InvalidInput("status", f"at most {MAX_VALUES} values", f"{len(raw_statuses)} values")
    statuses = tuple(dict.fromkeys(_status(s, spec) for s in raw_statuses if s))
    run_states = tuple(dict.fromkeys(_run_state(s) for s in _many(query, "run_state")))
    foreign_ids = tuple(
        dict.fromkeys(text("foreign_id", f, max_length=MAX_FOREIGN_ID) for f in _many(query, "foreign_id"))
    )
    raw_limit = _one(query, "limit")
    limit = DEFAULT_LIMIT if raw_limit is None else _integer("limit", raw_limit, 1, MAX_LIMIT)
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


def action_form(form: MultiMapping[Any]) -> ActionForm:
    """A pause/resume/cancel/delete form post: its CSRF token and optional reason."""
    _only(form, ACTION_FIELDS)
    token = _one(form, "csrf_token") or ""
    reason = _one(form, "reason") or ""
    return ActionForm(token, text("reason", reason, max_length=MAX_REASON, allow_newlines=True))
