"""Status conditions with the semantics of meta/v1 Condition, for every conveyor object whose status has them
(the operator's Workflow, the workers' WorkflowRun): a condition's lastTransitionTime moves only when its status
flips, it says which generation of the spec it speaks for, and its message stays within the 32768 characters the
API server accepts. Built in one place so the two writers cannot drift apart."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

# meta/v1 Condition's limit (`maxLength` of .message in the API's own schema).
MAX_CONDITION_MESSAGE: Final = 32768

_STATUSES: Final = frozenset({"True", "False", "Unknown"})


def format_time(moment: datetime) -> str:
    """`moment` as a Kubernetes timestamp (meta/v1 Time: RFC 3339 in UTC, to the second)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def conditions_by_type(conditions: object) -> dict[str, dict[str, Any]]:
    """A status's `conditions` list keyed by type, what `condition` takes as `previous`. Read from an object as the
    API server has it, so anything that is not a list of typed mappings counts as no condition."""
    if not isinstance(conditions, list):
        return {}
    return {
        each["type"]: dict(each)
        for each in conditions
        if isinstance(each, Mapping) and isinstance(each.get("type"), str)
    }


def condition(
    type_: str,
    status: bool | str,
    reason: str,
    message: str,
    *,
    previous: Mapping[str, Mapping[str, Any]] | None = None,
    generation: int | None = None,
    max_message: int = MAX_CONDITION_MESSAGE,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The condition `type_` as it is now. `status` is True/False or "True", "False", "Unknown"; `previous` holds
    the object's conditions as they were, keyed by type (`conditions_by_type`): the lastTransitionTime of the one
    of this type is kept if its status is the same, else it is `now` (by default the current time).
    `generation` is the metadata.generation the condition was computed for (observedGeneration; left out when
    None); the message is cut to `max_message` characters."""
    value = ("True" if status else "False") if isinstance(status, bool) else status
    if value not in _STATUSES:
        raise ValueError(f"a condition's status is True, False or Unknown, not {status!r}")
    before = (previous or {}).get(type_)
    if before is not None and before.get("status") == value and before.get("lastTransitionTime"):
        since = before["lastTransitionTime"]
    else:
        since = format_time(now if now is not None else datetime.now(UTC))
    found: dict[str, Any] = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message[:max_message],
        "lastTransitionTime": since,
    }
    if generation is not None:
        found["observedGeneration"] = generation
    return found
