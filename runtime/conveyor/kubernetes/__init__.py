"""conveyor.kubernetes: what the workers and the operator must agree on to work together on Kubernetes, kept in
one place so neither can drift from the other.

- GROUP, VERSION, API_VERSION and the kinds and plurals of the custom resources (Workflow, WorkflowRun);
- `condition`: a status condition with meta/v1 Condition semantics (lastTransitionTime moves only when the status
  flips, observedGeneration, a capped message), with `conditions_by_type` and `format_time`;
- `write_termination_message` and the termination message's path, size limit and CodeMismatch reason, how a
  worker tells the operator why it exits;
- `default_namespace`: the pod's own namespace, else "default";
- stranded runs: the Workflow status field the system worker publishes them in (STRANDED_RUNS_FIELD), the
  Degraded reason the operator shows for them (STRANDED_RUNS), and `stranded_entries` / `stranded_message`, how
  the operator reads that field and says it;
- `add_workflowrun_mirror` (and its `WorkflowRunMirror`): the process of a workflow's table that makes WorkflowRuns
  do what they say; it needs the kubernetes client, imported only when one of these two names is first used.

It sits above the engine (which never imports it) and imports no Kubernetes client at import time, so the operator
uses it without the engine's optional dependencies. The Lease role scheduler is an adapter, in
conveyor.adapters.kubernetes."""

from typing import TYPE_CHECKING, Any

from conveyor.kubernetes._conditions import (
    MAX_CONDITION_MESSAGE,
    condition,
    conditions_by_type,
    format_time,
)
from conveyor.kubernetes._namespace import default_namespace
from conveyor.kubernetes._resources import (
    API_VERSION,
    GROUP,
    VERSION,
    WORKFLOW_KIND,
    WORKFLOW_RUN_KIND,
    WORKFLOW_RUNS,
    WORKFLOWS,
)
from conveyor.kubernetes._stranded import (
    STRANDED_RUNS,
    STRANDED_RUNS_FIELD,
    STRANDED_STATUSES_LIMIT,
    stranded_entries,
    stranded_message,
)
from conveyor.kubernetes._termination import (
    CODE_MISMATCH,
    TERMINATION_LOG,
    TERMINATION_MESSAGE_LIMIT,
    write_termination_message,
)

if TYPE_CHECKING:
    from conveyor.kubernetes._workflowruns import WorkflowRunMirror, add_workflowrun_mirror

_MIRROR = ("WorkflowRunMirror", "add_workflowrun_mirror")


def __getattr__(name: str) -> Any:
    # The mirror imports the kubernetes client and the engine; the rest of this package must stay light.
    if name in _MIRROR:
        from conveyor.kubernetes import _workflowruns

        return getattr(_workflowruns, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "API_VERSION",
    "CODE_MISMATCH",
    "GROUP",
    "MAX_CONDITION_MESSAGE",
    "STRANDED_RUNS",
    "STRANDED_RUNS_FIELD",
    "STRANDED_STATUSES_LIMIT",
    "TERMINATION_LOG",
    "TERMINATION_MESSAGE_LIMIT",
    "VERSION",
    "WORKFLOWS",
    "WORKFLOW_KIND",
    "WORKFLOW_RUNS",
    "WORKFLOW_RUN_KIND",
    "WorkflowRunMirror",
    "add_workflowrun_mirror",
    "condition",
    "conditions_by_type",
    "default_namespace",
    "format_time",
    "stranded_entries",
    "stranded_message",
    "write_termination_message",
]
