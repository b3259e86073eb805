"""The operator tests' fixtures, for the WorkflowRun tests: the committed CRDs applied, a fresh namespace per
module, and the in-process operator for it (the API client, `api`, is a session fixture of tests/services.py)."""

from tests.operator.conftest import crds, namespace, operator

__all__ = ["crds", "namespace", "operator"]
