"""Reading the run states, statuses and free text that people type to pick runs (a query string of the UI, the
options of `conveyor runs`), so both entries accept the same spellings, refuse the same mistakes with the same
InvalidInput naming the field, and never pass the record store a value it would choke on (NUL, unpaired
surrogates, an integer past its column) — that would be the client's error turned into the store's failure."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from conveyor._core.runstate import RunState
from conveyor._engine.spec import WorkflowSpec
from conveyor.errors import InvalidInput

# The Postgres `integer` that holds the status column.
MAX_STATUS = 2**31 - 1
MAX_NAME = 256
MAX_FOREIGN_ID = 1024

# UNKNOWN is the zero value, never stored: filtering by it could only ever match nothing.
RUN_STATES = tuple(s for s in RunState if s is not RunState.UNKNOWN)

# Plain ASCII digits with an optional sign: the sign is read so that "-3" is refused as out of range rather than
# as an unknown name; int() alone would also take " 7", "7_000" and non-ASCII digits.
_NUMBER = re.compile(r"[+-]?[0-9]+", re.ASCII)
# An enum member's name, with words joined by "-" or spaces as people type them.
_NAME = re.compile(r"[^\W\d][\w\- ]*")


def text(field: str, value: str, *, max_length: int, allow_newlines: bool = False) -> str:
    """`value` if the store can hold it and a person can read it: at most `max_length` characters, valid Unicode,
    no control characters (newlines and tabs only where `allow_newlines`)."""
    if not isinstance(value, str):
        raise InvalidInput(field, "text", value)
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


def integer(field: str, raw: str, low: int, high: int) -> int:
    """`raw` as an integer from `low` to `high`, written in plain ASCII digits."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(high)) + 1:
        raise InvalidInput(field, f"an integer from {low} to {high}", raw)
    number = int(raw)
    if not low <= number <= high:
        raise InvalidInput(field, f"an integer from {low} to {high}", raw)
    return number


def _member_name(raw: str) -> str:
    # "requested-data-deleted", "Requested data deleted" and "REQUESTED_DATA_DELETED" are one name.
    return re.sub(r"[-\s]+", "_", raw.strip()).upper()


def is_name(raw: str) -> bool:
    """Whether `raw` is shaped like a status's or run state's name (rather than a number or neither)."""
    return _NAME.fullmatch(raw.strip()) is not None


def run_state(raw: str, field: str = "run_state") -> RunState:
    """A run state by name (any case, words joined by `_`, `-` or spaces) or number."""
    names = ", ".join(s.name for s in RUN_STATES)
    expected = f"a run state ({names}, in any case) or its number (1 to {len(RUN_STATES)})"
    value = raw.strip()
    if _NUMBER.fullmatch(value):
        return RunState(integer(field, value, 1, len(RUN_STATES)))
    found = RunState.__members__.get(_member_name(value))
    if found is None or found is RunState.UNKNOWN:
        raise InvalidInput(field, expected, raw)
    return found


def status(raw: str, spec: WorkflowSpec[Any, Any] | None, field: str = "status") -> int:
    """A status by number, or by name (any case, as `run_state`) when the workflow `spec` is known."""
    value = raw.strip()
    if _NUMBER.fullmatch(value):
        return integer(field, value, 1, MAX_STATUS)
    if not is_name(value):
        raise InvalidInput(field, f"a status number from 1 to {MAX_STATUS} or a status name", raw)
    if spec is None:
        raise InvalidInput(field, f"a status number from 1 to {MAX_STATUS} (a status name needs its workflow)", raw)
    members = spec.status_type.__members__
    found = members.get(_member_name(value))
    if found is None or int(found) == 0:
        names = ", ".join(name for name, member in members.items() if int(member) != 0)
        raise InvalidInput(field, f"a status number or a status of {spec.name} ({names})", raw)
    return int(found)


def split_values(values: Iterable[str]) -> list[str]:
    """Values given several times or separated by commas ("PAID, REFUNDED", as a form's one box sends them);
    status and run state names never hold a comma."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]
