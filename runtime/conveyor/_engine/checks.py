"""Checks of what callers hand to a workflow or a `Client` (foreign ids, run ids, statuses, reasons, timeouts):
each refusal is an InvalidInput naming the field and what was expected, and the same value is refused alike by
every record store (Postgres cannot hold a NUL that memory would keep)."""

from __future__ import annotations

import enum
from typing import Any, TypeVar

from conveyor._engine.spec import WorkflowSpec
from conveyor.errors import InvalidInput, InvalidStatus

S = TypeVar("S", bound=enum.IntEnum)

MAX_FOREIGN_ID = 512
MAX_RUN_ID = 128
MAX_REASON = 1024


def foreign_id(value: object) -> str:
    # NUL and lone surrogates: a memory store would keep them, Postgres cannot; refused alike in every store.
    if not isinstance(value, str) or not value or len(value) > MAX_FOREIGN_ID or not _is_text(value):
        raise InvalidInput(
            "foreign_id",
            f"a non-empty string of at most {MAX_FOREIGN_ID} characters (no NUL, no lone surrogate)",
            value,
        )
    return value


def run_id(value: object, *, field: str = "run_id") -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_RUN_ID or not value.isprintable():
        raise InvalidInput(field, f"a non-empty string of at most {MAX_RUN_ID} printable characters", value)
    return value


def reason(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_REASON or not _is_text(value):
        raise InvalidInput("reason", f"a string of at most {MAX_REASON} characters (no NUL)", value)
    return value


def timeout(value: object) -> float | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
        raise InvalidInput("timeout", "a number of seconds >= 0 or None", value)
    return value


def payload(value: object) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidInput("payload", "bytes", type(value).__name__)
    return bytes(value)


def member(spec: WorkflowSpec[Any, S], field: str, value: object) -> S:
    """`value` as a status of the workflow: a member of its enum (or its int) that its graph knows."""
    status_type = spec.status_type
    if isinstance(value, enum.Enum) and not isinstance(value, status_type):
        raise InvalidStatus(field, f"a {status_type.__name__}", value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidStatus(field, f"a {status_type.__name__}", value)
    try:
        found = status_type(value)
    except ValueError:
        raise InvalidStatus(field, f"a {status_type.__name__}", value) from None
    if not spec.graph.is_valid(int(found)):
        raise InvalidStatus(field, f"a status of workflow {spec.name!r}", found)
    return found


def start_status(spec: WorkflowSpec[Any, S], start_at: object) -> S:
    """Where a triggered run starts: the workflow's first status, or `start_at` if something consumes it."""
    if start_at is None:
        return spec.default_start
    found = member(spec, "start_at", start_at)
    if int(found) not in spec.consumed:
        raise InvalidStatus("start_at", "a status that a step, callback or timeout consumes", found)
    return found


def _is_text(value: str) -> bool:
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
