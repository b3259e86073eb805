"""conveyor.kubernetes: what the workers and the operator must agree on to work together on Kubernetes, kept in
one place so neither can drift from the other.

- GROUP, VERSION, API_VERSION and the kinds and plurals of the custom resources (Workflow, WorkflowRun);
- `condition`: a status condition with meta/v1 Condition semantics (lastTransitionTime moves only when the status
  flips, observedGeneration, a capped message), with `conditions_by_type` and `format_time`;
- `write_termination_message` and the termination message's path, size limit and CodeMismatch reason, how a
  worker tells the operator why it exits;
- `default_namespace`: the pod's own namespace, else "default".

It sits above the engine (which never imports it) and imports no Kubernetes client at import time, so the operator
uses it without the engine's optional dependencies. The Lease role scheduler is an adapter, in
conveyor.adapters.kubernetes."""

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
from conveyor.kubernetes._termination import (
    CODE_MISMATCH,
    TERMINATION_LOG,
    TERMINATION_MESSAGE_LIMIT,
    write_termination_message,
)

__all__ = [
    "API_VERSION",
    "CODE_MISMATCH",
    "GROUP",
    "MAX_CONDITION_MESSAGE",
    "TERMINATION_LOG",
    "TERMINATION_MESSAGE_LIMIT",
    "VERSION",
    "WORKFLOWS",
    "WORKFLOW_KIND",
    "WORKFLOW_RUNS",
    "WORKFLOW_RUN_KIND",
    "condition",
    "conditions_by_type",
    "default_namespace",
    "format_time",
    "write_termination_message",
]
