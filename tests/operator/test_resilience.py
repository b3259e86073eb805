"""kopf's best-known failure is the silent watch: a stream that dies without an error leaves the operator a zombie.
Here the API server is restarted under a running operator (every connection and watch breaks, as in an upgrade
or a crash) and the operator must go on reconciling new Workflows."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes import client

from tests.helpers import GROUP, VERSION, Operator, eventually, has_deployments, run_script, workflow
from tests.services import restartable_kube

# Long enough that the leader keeps its Lease while the API server is away (a leader that cannot renew would stop
# and, with no kubelet here to restart it, stay stopped).
LEASE_SECONDS = 60
T = TypeVar("T")


def retried(call: Callable[[], T], timeout: float = 60) -> T:
    """`call()` once the API server answers again (its old pooled connections fail first)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_the_operator_keeps_reconciling_across_an_api_server_restart(
    api: client.ApiClient, namespace: str, kubeconfig: str, crds: list[dict[str, Any]]
) -> None:
    restartable_kube(kubeconfig)
    operator = Operator("operator-resilient", namespace, f"leader-{uuid.uuid4().hex[:6]}", kubeconfig, LEASE_SECONDS)
    custom = client.CustomObjectsApi(api)
    try:
        eventually(operator.healthy, timeout=30)
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "workflows", workflow("before-restart", {"CREATED": {}})
        )
        eventually(lambda: has_deployments(api, namespace, "before-restart"), timeout=60)

        done = run_script("kube.sh", "restart-apiserver", timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        restarted_at = time.monotonic()
        retried(
            lambda: custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "workflows", workflow("after-restart", {"CREATED": {}})
            )
        )
        eventually(lambda: retried(lambda: has_deployments(api, namespace, "after-restart")), timeout=90)
        print(f"reconciled a new Workflow {time.monotonic() - restarted_at:.1f}s after the API server restarted")
        assert operator.process.poll() is None, "the operator died with the API server"
    finally:
        operator.stop()
