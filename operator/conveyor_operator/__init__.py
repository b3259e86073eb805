"""conveyor's Kubernetes operator: the `Workflow` and `WorkflowRun` custom resources (group conveyor.dev, version
v1alpha1) and the kopf reconciler that runs a Workflow's worker Deployments.

`python -m conveyor_operator.crds` regenerates the CRD YAML from the models; `conveyor-operator` runs the operator.
"""

from conveyor.kubernetes import GROUP, VERSION
from conveyor_operator._crds import crd_documents
from conveyor_operator._main import main
from conveyor_operator._models import (
    WorkflowRunSpec,
    WorkflowRunStatus,
    WorkflowSpec,
    WorkflowStatus,
)

__all__ = [
    "GROUP",
    "VERSION",
    "WorkflowRunSpec",
    "WorkflowRunStatus",
    "WorkflowSpec",
    "WorkflowStatus",
    "crd_documents",
    "main",
]
