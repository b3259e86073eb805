"""The operator's leader election, with two real `conveyor-operator` processes on the real API server: one leads
(holds the Lease and reconciles), the other waits; SIGKILL the leader and the standby reconciles within 15 s; a
SIGTERM'd leader exits 0 and gives the Lease back at once. Their /metrics say which one leads and what it reconciled."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.operator.helpers import GROUP, LEASE_SECONDS, VERSION, Operator, eventually, workflow

TAKEOVER_LIMIT = 15.0


@pytest.fixture
def pair(
    request: pytest.FixtureRequest, kubeconfig: str, namespace: str, crds: list[dict[str, Any]]
) -> Iterator[tuple[Operator, Operator, str]]:
    lease = f"leader-{uuid.uuid4().hex[:6]}"
    seconds = getattr(request, "param", LEASE_SECONDS)
    operators = (
        Operator("operator-a", namespace, lease, kubeconfig, seconds),
        Operator("operator-b", namespace, lease, kubeconfig, seconds),
    )
    try:
        yield operators[0], operators[1], lease
    finally:
        for each in operators:
            each.stop()


def holder(api: client.ApiClient, namespace: str, lease: str) -> str | None:
    try:
        found = client.CoordinationV1Api(api).read_namespaced_lease(lease, namespace)
    except client.exceptions.ApiException as e:
        if e.status == 404:
            return None
        raise
    return found.spec.holder_identity if found.spec is not None else None


def apply_workflow(api: client.ApiClient, namespace: str, name: str) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "workflows", workflow(name, {"CREATED": {"parallelCount": 1}})
    )


def has_deployments(api: client.ApiClient, namespace: str, name: str) -> bool:
    found = client.AppsV1Api(api).list_namespaced_deployment(namespace, label_selector=f"conveyor.dev/workflow={name}")
    return len(found.items) == 2  # the step's one shard and the system roles'


def reconciles(operator: Operator, result: str) -> float:
    key = (("kind", "Workflow"), ("result", result))
    return operator.metrics().get("conveyor_operator_reconciles_total", {}).get(key, 0)


def test_the_standby_takes_over_within_15s_of_a_sigkill(
    api: client.ApiClient, namespace: str, pair: tuple[Operator, Operator, str]
) -> None:
    first, second, lease = pair
    leader_name = eventually(lambda: holder(api, namespace, lease), timeout=30)
    leader, standby = (first, second) if leader_name == first.name else (second, first)
    assert leader_name == leader.name
    eventually(lambda: leader.healthy() and standby.healthy(), timeout=15)  # a standby answers its probes too

    apply_workflow(api, namespace, "before-failover")
    eventually(lambda: has_deployments(api, namespace, "before-failover"), timeout=30)
    # Their /metrics say who leads and what it reconciled.
    assert leader.metrics()["conveyor_operator_leader"] == {(): 1}
    assert standby.metrics()["conveyor_operator_leader"] == {(): 0}
    eventually(lambda: reconciles(leader, "success") >= 1)  # counted once the reconcile has written the status
    assert reconciles(standby, "success") == 0

    leader.process.send_signal(signal.SIGKILL)
    leader.process.wait(10)
    killed_at = time.monotonic()
    apply_workflow(api, namespace, "after-failover")
    eventually(lambda: has_deployments(api, namespace, "after-failover"), timeout=TAKEOVER_LIMIT + 5)
    took = time.monotonic() - killed_at
    print(f"standby reconciled {took:.1f}s after the leader's SIGKILL (lease {LEASE_SECONDS}s)")
    assert took <= TAKEOVER_LIMIT
    assert holder(api, namespace, lease) == standby.name
    assert standby.process.poll() is None
    assert standby.metrics()["conveyor_operator_leader"] == {(): 1}
    eventually(lambda: reconciles(standby, "success") >= 1)


RELEASE_TEST_LEASE_SECONDS = 30


@pytest.mark.parametrize("pair", [RELEASE_TEST_LEASE_SECONDS], indirect=True)
def test_a_sigtermed_leader_exits_cleanly_and_releases_the_lease(
    api: client.ApiClient, namespace: str, kubeconfig: str, pair: tuple[Operator, Operator, str]
) -> None:
    first, second, lease = pair
    leader_name = eventually(lambda: holder(api, namespace, lease), timeout=30)
    leader, standby = (first, second) if leader_name == first.name else (second, first)
    eventually(leader.healthy, timeout=15)
    leader.process.send_signal(signal.SIGTERM)
    assert leader.process.wait(30) == 0, leader.output()
    # Released, not expired: the standby holds it well before a lease duration would have passed.
    started = time.monotonic()
    eventually(lambda: holder(api, namespace, lease) == standby.name, timeout=RELEASE_TEST_LEASE_SECONDS)
    assert time.monotonic() - started < RELEASE_TEST_LEASE_SECONDS / 2
    # A standby asked to stop while waiting exits cleanly too.
    standby_wait = Operator("operator-c", namespace, lease, kubeconfig, RELEASE_TEST_LEASE_SECONDS)
    try:
        eventually(standby_wait.healthy, timeout=15)
        standby_wait.process.send_signal(signal.SIGTERM)
        assert standby_wait.process.wait(15) == 0
    finally:
        standby_wait.stop()


def test_bad_arguments_name_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    from conveyor_operator._main import main

    for argv, field in [
        (["-n", "x", "--liveness", "http://127.0.0.1/healthz"], "--liveness"),
        (["-n", "x", "--lease-duration", "0"], "--lease-duration"),
        (
            ["-n", "x", "--leader-election-namespace", "Not_A_Namespace", "--liveness", "http://127.0.0.1:0/"],
            "namespace",
        ),
    ]:
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        assert field in capsys.readouterr().err
