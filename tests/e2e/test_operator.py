"""The operator and the workers where things go wrong, on the cluster:

- the standby operator replica says that it stands by; a force-deleted leader's Lease is held by another replica
  (the standby, or the leader's replacement when it looks first) within the lease duration, and every change of
  holder counts in `leaseTransitions`, a clean handover included;
- an operator whose pods have no cluster DNS still reaches the API server (kopf by the same address as its Lease)
  and reconciles;
- a Workflow whose workers crash-loop is Degraded with the pods' reason and message;
- with the database gone, a worker pod that starts waits, unready and without restarting, and is ready within
  seconds of the database's return (not after Kubernetes' crash back-off).

Runs after test_install (name order) and before test_order_processing, on the quick start's Workflow."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs among the dev dependencies

from tests.e2e.cluster import (
    EXAMPLE,
    OPERATOR_SELECTOR,
    STEP_LABEL,
    WORKFLOW_LABEL,
    Cluster,
    container_status,
    pod_name,
    pod_ready,
    pod_status,
    wait,
)
from tests.helpers import GROUP, VERSION

NAME = "order-processing"
TIMEOUT = 300.0
# What the standby replica logs once when it starts to wait for the leader's Lease.
STANDBY_LINE = re.compile(r"standby|standing by", re.IGNORECASE)


def operator_pods(cluster: Cluster) -> list[Any]:
    return [p for p in cluster.pods(OPERATOR_SELECTOR, cluster.release_namespace) if pod_ready(p)]


def leader(cluster: Cluster) -> tuple[str, int]:
    """The operator Lease's holder and leaseTransitions."""
    spec = cluster.operator_lease().spec
    assert spec is not None and spec.holder_identity, spec
    return spec.holder_identity, spec.lease_transitions or 0


def wait_operator_settled(cluster: Cluster) -> tuple[str, str]:
    """Two ready replicas, one holding the Lease; (leader, standby)."""

    def settled() -> tuple[str, str]:
        pods = {pod_name(p) for p in operator_pods(cluster)}
        holder, _ = leader(cluster)
        assert len(pods) == 2 and holder in pods, (pods, holder)
        (standby,) = pods - {holder}
        return holder, standby

    found: tuple[str, str] = wait("two ready operator replicas, one leading", settled, TIMEOUT, interval=1)
    return found


def broken_workflow(cluster: Cluster, name: str, **spec: Any) -> dict[str, Any]:
    """The example's Workflow under another name, one pod per step, with `spec` changed."""
    body: dict[str, Any] = yaml.safe_load((EXAMPLE / "workflow.yaml").read_text())
    body["metadata"] = {"name": name, "namespace": cluster.namespace}
    for step in body["spec"]["steps"].values():
        step["parallelCount"] = 1
        step["replicasPerShard"] = 1
    body["spec"].update(spec)
    return body


@pytest.fixture
def apply_workflow(cluster: Cluster) -> Iterator[Any]:
    """Apply Workflows for one test; deleted after it, with their pods waited out."""
    names: list[str] = []

    def apply(body: dict[str, Any]) -> str:
        cluster.kubectl("-n", cluster.namespace, "apply", "-f", "-", stdin=json.dumps(body))
        names.append(body["metadata"]["name"])
        return str(body["metadata"]["name"])

    yield apply
    for name in names:
        cluster.kubectl("-n", cluster.namespace, "delete", "workflow", name, "--ignore-not-found", "--wait=true")
        wait(f"the pods of {name} to be gone", pods_gone(cluster, f"{WORKFLOW_LABEL}={name}"), TIMEOUT)


def pods_gone(cluster: Cluster, selector: str) -> Callable[[], bool]:
    return lambda: not cluster.pods(selector)


def conditions(cluster: Cluster, name: str) -> dict[str, dict[str, Any]]:
    found = cluster.workflow(name)
    assert found is not None, f"no Workflow {name}"
    return {c["type"]: c for c in (found.get("status") or {}).get("conditions") or []}


def test_the_standby_operator_says_it_stands_by(cluster: Cluster) -> None:
    _, standby = wait_operator_settled(cluster)
    log = cluster.kubectl("-n", cluster.release_namespace, "logs", standby)
    assert STANDBY_LINE.search(log), f"the standby {standby} logged nothing of it:\n{log[-2000:]}"


def test_a_force_deleted_operator_leader_hands_its_lease_over(cluster: Cluster) -> None:
    old, _ = wait_operator_settled(cluster)
    _, transitions = leader(cluster)
    spec = cluster.operator_lease().spec
    assert spec is not None and spec.lease_duration_seconds
    duration = spec.lease_duration_seconds

    start = time.monotonic()
    cluster.kubectl("-n", cluster.release_namespace, "delete", "pod", old, "--grace-period=0", "--force")
    # The standby, or the replica replacing the killed one, whichever looks first once the Lease is free.
    wait("another replica to hold the operator Lease", lambda: leader(cluster)[0] != old, duration + 30)
    took = time.monotonic() - start
    assert took <= duration + 5, f"the Lease was held again after {took:.1f}s, over a lease duration of {duration}s"
    assert leader(cluster)[1] == transitions + 1

    # A clean handover (a pod deleted with its grace period: the leader releases its Lease) counts too.
    current, _ = wait_operator_settled(cluster)
    cluster.kubectl("-n", cluster.release_namespace, "delete", "pod", current, "--wait=true", timeout=TIMEOUT)
    wait("another replica to take the released Lease", lambda: leader(cluster)[0] not in ("", current), TIMEOUT)
    assert leader(cluster)[1] == transitions + 2
    wait_operator_settled(cluster)


def test_an_operator_without_cluster_dns_still_reconciles(cluster: Cluster, apply_workflow: Any) -> None:
    deployment = cluster.release
    no_dns = {"spec": {"template": {"spec": {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["127.0.0.1"]}}}}}
    cluster.kubectl(
        "-n", cluster.release_namespace, "patch", "deployment", deployment, "--type", "merge", "-p", json.dumps(no_dns)
    )
    try:
        cluster.kubectl(
            "-n", cluster.release_namespace, "rollout", "status", f"deployment/{deployment}", "--timeout", "5m",
            timeout=TIMEOUT + 30,
        )  # fmt: skip
        holder, _ = wait_operator_settled(cluster)
        resolved = cluster.kubectl(
            "-n", cluster.release_namespace, "exec", holder, "--",
            "python", "-c", "import socket; socket.gethostbyname('kubernetes.default.svc')",
            check=False,
        )  # fmt: skip
        assert "gaierror" in resolved, f"the leader {holder} still resolves names: {resolved}"
        # The leader reconciles: a new Workflow gets its Deployments, and its status.
        name = apply_workflow(broken_workflow(cluster, f"{NAME}-no-dns", entrypoint="orders.missing:builder"))
        wait(
            f"the operator to create the Deployments of {name}",
            lambda: len(cluster.apps.list_namespaced_deployment(
                cluster.namespace, label_selector=f"{WORKFLOW_LABEL}={name}").items) == 6,
            TIMEOUT,
        )  # fmt: skip
        wait(f"a status on {name}", lambda: conditions(cluster, name).get("Ready"), TIMEOUT)
    finally:
        cluster.kubectl("-n", cluster.release_namespace, "rollout", "undo", f"deployment/{deployment}")
        cluster.kubectl(
            "-n", cluster.release_namespace, "rollout", "status", f"deployment/{deployment}", "--timeout", "5m",
            timeout=TIMEOUT + 30,
        )  # fmt: skip
        wait_operator_settled(cluster)


def test_a_workflow_whose_workers_crash_loop_is_degraded_with_their_reason(
    cluster: Cluster, apply_workflow: Any
) -> None:
    name = apply_workflow(broken_workflow(cluster, f"{NAME}-crashing", entrypoint="orders.missing:builder"))

    def degraded() -> dict[str, Any]:
        condition = conditions(cluster, name).get("Degraded", {})
        assert condition.get("status") == "True", condition
        return condition

    condition = wait(f"Workflow {name} to be Degraded", degraded, TIMEOUT, interval=2)
    assert condition["reason"] not in ("AsExpected", "CodeMismatch"), condition
    # The pods' own words: the worker could not import the entrypoint's module.
    assert "orders.missing" in condition["message"], condition
    pods = {pod_name(p) for p in cluster.pods(f"{WORKFLOW_LABEL}={name}")}
    assert any(pod in condition["message"] for pod in pods), (condition, pods)


def test_a_worker_started_without_its_database_waits_unready_then_serves(cluster: Cluster) -> None:
    namespace = cluster.namespace
    selector = f"{WORKFLOW_LABEL}={NAME},{STEP_LABEL}=PAID"
    (old,) = [pod_name(p) for p in cluster.pods(selector) if pod_ready(p)]
    cluster.kubectl("-n", namespace, "scale", "deployment/postgres", "--replicas=0")
    try:
        wait("Postgres to be gone", lambda: not cluster.pods("app.kubernetes.io/name=postgres"), TIMEOUT)
        cluster.kubectl("-n", namespace, "delete", "pod", old, "--wait=true", timeout=TIMEOUT)

        def started() -> Any:
            new = [p for p in cluster.pods(selector) if pod_name(p) != old]
            assert new and pod_status(new[0]).phase == "Running", [(pod_name(p), pod_status(p).phase) for p in new]
            return new[0]

        pod = wait("a new PAID pod running", started, TIMEOUT)
        name = pod_name(pod)
        # Long past the time a worker without its store used to exit (about 6 s): it waits, unready, unrestarted.
        time.sleep(30)
        status = container_status(cluster.core.read_namespaced_pod(name, namespace))
        assert (status.ready, status.restart_count) == (False, 0), status
        events = cluster.kubectl("-n", namespace, "get", "events", "--field-selector", f"involvedObject.name={name}")
        assert "Readiness probe failed" in events, events
    finally:
        cluster.kubectl("-n", namespace, "scale", "deployment/postgres", "--replicas=1")
        cluster.kubectl("-n", namespace, "rollout", "status", "deployment/postgres", "--timeout", "5m", timeout=330)
    back = time.monotonic()
    wait(f"{name} to be ready", lambda: pod_ready(cluster.core.read_namespaced_pod(name, namespace)), 120)
    took = time.monotonic() - back
    status = container_status(cluster.core.read_namespaced_pod(name, namespace))
    assert status.restart_count == 0, status
    assert took < 60, f"{name} became ready {took:.0f}s after Postgres was back"
    run = f"after-outage-{uuid.uuid4().hex[:6]}"
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowRun",
        "metadata": {"name": run},
        "spec": {"workflow": NAME, "foreignID": run, "object": {"id": run, "amount_cents": 100, "items": 1}},
    }
    cluster.kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(body))
    cluster.kubectl(
        "-n", namespace, "wait", "--for=jsonpath={.status.phase}=Succeeded", f"workflowrun/{run}", "--timeout", "3m",
        timeout=200,
    )  # fmt: skip
