"""Every error conveyor raises on purpose. All derive from ConveyorError, so `except ConveyorError` catches ours
and nothing else. Errors about bad input also derive from ValueError and name the field and what was expected."""

from __future__ import annotations


class ConveyorError(Exception):
    """Base of every conveyor error."""


class InvalidInput(ConveyorError, ValueError):
    """An argument, manifest field or request parameter was not what was expected. Nothing was changed."""

    def __init__(self, field: str, expected: str, got: object = ...) -> None:
        self.field = field
        self.expected = expected
        message = f"{field}: expected {expected}"
        if got is not ...:
            message += f", got {got!r}"
        super().__init__(message)


class InvalidWorkflow(ConveyorError, ValueError):
    """The workflow's graph or options cannot be built; `problems` lists every problem found."""

    def __init__(self, workflow_name: str, problems: list[str]) -> None:
        self.workflow_name = workflow_name
        self.problems = list(problems)
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"workflow {workflow_name!r} is invalid:\n{listed}")


class InvalidStatus(InvalidInput):
    """A status that this workflow cannot use where it was given (unknown, or nothing consumes it)."""


class InvalidObject(InvalidInput):
    """An object that does not match the workflow's object type; `errors` holds the validator's details."""

    def __init__(self, field: str, expected: str, details: str) -> None:
        super().__init__(field, expected)
        self.details = details
        self.args = (f"{field}: expected {expected}: {details}",)


class InvalidTransition(ConveyorError):
    """A run-state change that the run's current state does not allow (e.g. resuming a completed run)."""

    def __init__(self, run_id: str, current: object, target: object) -> None:
        self.run_id = run_id
        self.current = current
        self.target = target
        super().__init__(f"run {run_id}: cannot move from {current} to {target}")


class RecordNotFound(ConveyorError, LookupError):
    """No run has that run id (or no run exists for that foreign id)."""


class WorkflowInProgress(ConveyorError):
    """A run for this foreign id is still in progress (initiated, running or paused); one at a time."""


class VersionConflict(ConveyorError):
    """The run changed since it was read: the write was refused and nothing was stored."""

    def __init__(self, run_id: str, expected: int, actual: int | None) -> None:
        self.run_id = run_id
        self.expected_version = expected
        self.actual_version = actual
        super().__init__(f"run {run_id}: expected version {expected}, found {actual}")


class ForkRefused(ConveyorError):
    """`Client.fork` refused the run: it is still active (initiated or running), or its data was deleted. Nothing
    was written. `reason` says which, and what to do."""

    def __init__(self, run_id: str, reason: str) -> None:
        self.run_id = run_id
        self.reason = reason
        super().__init__(f"run {run_id} cannot be forked: {reason}")


class TimeoutNotFound(ConveyorError, LookupError):
    """No timeout has that id."""


class WorkflowNotRunning(ConveyorError):
    """The call needs the workflow to be running (`await wf.run()` or `async with wf`)."""


class RoleLost(ConveyorError):
    """The process lost the role it held (its lease could not be renewed) and stopped acting on it."""


__all__ = [
    "ConveyorError",
    "ForkRefused",
    "InvalidInput",
    "InvalidObject",
    "InvalidStatus",
    "InvalidTransition",
    "InvalidWorkflow",
    "RecordNotFound",
    "RoleLost",
    "TimeoutNotFound",
    "VersionConflict",
    "WorkflowInProgress",
    "WorkflowNotRunning",
]


class StaleRead(ConveyorError):
    """The store returned an older version of a run than an event announced (e.g. a lagging replica). The event is
    retried, not acted upon."""

    def __init__(self, run_id: str, event_version: int, record_version: int) -> None:
        super().__init__(f"run {run_id}: event announced version {event_version}, store returned {record_version}")


class ServiceUnavailable(ConveyorError):
    """A service an adapter needs (Postgres, Kafka, the Kubernetes API) cannot be reached; the message names it
    and where it was looked for (credentials masked)."""

    def __init__(self, service: str, address: str, reason: str) -> None:
        self.service = service
        self.address = address
        super().__init__(f"{service} at {address} is unavailable: {reason}")


class SchemaNotMigrated(ConveyorError):
    """The database has no (or an older) conveyor schema. Run `conveyor db migrate`: it never happens silently."""


class AccessDenied(ConveyorError, PermissionError):
    """A service refused an adapter what it needs (e.g. RBAC forbids updating Leases); the message names the
    service, the action and where, so the missing permission can be granted."""

    def __init__(self, service: str, action: str, reason: str) -> None:
        self.service = service
        self.action = action
        super().__init__(f"{service} refused to {action}: {reason}")


__all__ += ["AccessDenied", "SchemaNotMigrated", "ServiceUnavailable", "StaleRead"]
