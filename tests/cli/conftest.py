"""The operator tests' fixtures, for the WorkflowRun tests: an API client, the committed CRDs applied, a fresh
namespace per module, and the in-process operator for it."""

from tests.operator.conftest import api, crds, namespace, operator

__all__ = ["api", "crds", "namespace", "operator"]
