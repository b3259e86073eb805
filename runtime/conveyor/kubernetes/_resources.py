"""The names of conveyor's custom resources, as the operator (which defines and reconciles them) and the workers
(which mirror WorkflowRuns and publish a Workflow's graph) must both spell them: one API group and version, and
each kind with its plural, the name the API's paths and kubectl use.

No label or annotation key is shared today: the operator's labels on its Deployments and pods are its own
(conveyor_operator._names), and those of the Leases belong to the Lease adapter (conveyor.adapters.kubernetes)."""

from __future__ import annotations

from typing import Final

GROUP: Final = "conveyor.dev"
VERSION: Final = "v1alpha1"
# What an object's apiVersion says.
API_VERSION: Final = f"{GROUP}/{VERSION}"

WORKFLOW_KIND: Final = "Workflow"
WORKFLOWS: Final = "workflows"
WORKFLOW_RUN_KIND: Final = "WorkflowRun"
WORKFLOW_RUNS: Final = "workflowruns"
