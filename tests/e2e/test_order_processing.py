"""The shipped example, run end to end: examples/order_processing/workflow.yaml applied as a Workflow, its worker
pods running (as local processes under the pod runner, or as containers in a real cluster) and holding their
Leases, WorkflowRuns of the example's sample orders finishing where the example's code says they should, a step
scaled up and down with runs still finishing, a killed worker pod replaced by one that takes its role over,
the Workflow's deletion stopping every pod, and a Workflow whose steps differ from the code marked Degraded with
the workers' own words (their termination message).

The tests run in order on one Workflow, each leaving it Ready for the next; few processes on purpose (CI has 2
cores): every step has one shard of one pod (PAYMENT_FAILED two: a hot standby, which must count as ready), and
only CREATED is scaled to two shards."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs among the dev dependencies
from kubernetes.client.exceptions import ApiException

from tests.e2e.cluster import (
    EXAMPLE,
    SHARD_LABEL,
    STEP_LABEL,
    WORKFLOW_LABEL,
    Cluster,
    pod_name,
    pod_status,
    wait,
)
from tests.operator.helpers import GROUP, VERSION

NAME = "order-processing"
READY_TIMEOUT = 300.0  # every worker starting at once on 2 cores, then a rollout of every Deployment on a change
RUNS_TIMEOUT = 180.0
GONE_TIMEOUT = 120.0
ROLLOUT_TIMEOUT = 120.0
# A step with two replicas per shard: one holds the role, the other stands by (and must count as ready).
STANDBY_STEP = "PAYMENT_FAILED"
STANDBYS = 2


def manifest(cluster: Cluster) -> dict[str, Any]:
    """The example's Workflow with this cluster's Kafka and image: one shard per step, one pod per shard but
    for STANDBY_STEP, which has a hot standby (two replicas)."""
    found: dict[str, Any] = yaml.safe_load((EXAMPLE / "workflow.yaml").read_text())
    found["metadata"]["namespace"] = cluster.namespace
    spec = found["spec"]
    spec["image"] = cluster.image
    spec["streamer"]["bootstrapServers"] = cluster.kafka
    for name, step in spec["steps"].items():
        step["parallelCount"] = 1
        step["replicasPerShard"] = STANDBYS if name == STANDBY_STEP else 1
    return found


def example() -> Any:
    """The example's code (examples/order_processing/orders/workflow.py), imported as the worker pods import it."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        return importlib.import_module("orders.workflow")
    finally:
        sys.path.remove(str(EXAMPLE))


def expected_outcomes() -> dict[str, tuple[str, Any]]:
    """order id -> (final status name, object) for each of the example's sample orders, found by running the
    example's own workflow on the in-memory adapters: the cluster must agree with the library."""
    orders = example()
    from conveyor import RunState
    from conveyor.adapters.memory import MemoryRecordStore, MemoryRoleScheduler, MemoryStreamer

    async def run_all() -> dict[str, tuple[str, Any]]:
        wf = orders.builder.build(MemoryStreamer(), MemoryRecordStore(), MemoryRoleScheduler())
        found: dict[str, tuple[str, Any]] = {}
        async with wf:
            runs = {order.id: await wf.trigger(order.id, initial_value=order) for order in orders.sample_orders()}
            for order_id, run_id in runs.items():
                for _ in range(500):
                    run = await wf.get_run(run_id)
                    if run.run_state is RunState.COMPLETED:
                        break
                    await asyncio.sleep(0.01)
                assert run.run_state is RunState.COMPLETED, f"{order_id} did not complete in memory: {run}"
                found[order_id] = (run.status.name, run.object.model_dump(mode="json"))
        return found

    return asyncio.run(run_all())


def sample_objects() -> list[dict[str, Any]]:
    return [order.model_dump(mode="json") for order in example().sample_orders()]


@pytest.fixture(scope="module")
def outcomes() -> dict[str, tuple[str, Any]]:
    return expected_outcomes()


@pytest.fixture(scope="module")
def pids() -> set[int]:
    """Every worker process seen (pod runner mode): after the Workflow is deleted, none may be left."""
    return set()


@pytest.fixture(scope="module")
def workflow(cluster: Cluster) -> Iterator[dict[str, Any]]:
    body = manifest(cluster)
    custom = cluster.custom
    custom.create_namespaced_custom_object(GROUP, VERSION, cluster.namespace, "workflows", body)
    yield body
    try:
        custom.delete_namespaced_custom_object(GROUP, VERSION, cluster.namespace, "workflows", NAME)
    except ApiException as e:
        if e.status != 404:
            raise


# -- helpers -------------------------------------------------------------------------------------------------------


def wait_shards(cluster: Cluster, step: str, count: int) -> None:
    """Wait until the Workflow's status (for its current generation) has `count` shards of `step`, all ready."""

    def ready() -> bool:
        found = cluster.workflow(NAME)
        assert found is not None, "no Workflow"
        status = found.get("status") or {}
        steps = {s["name"]: s for s in status.get("steps") or []}
        got = steps.get(step, {})
        assert status.get("observedGeneration") == found["metadata"]["generation"], status
        assert got.get("desiredShards") == count and got.get("readyShards") == count, status
        return True

    wait(f"{count} ready shard(s) of step {step}", ready, READY_TIMEOUT, interval=1)


def wait_ready(cluster: Cluster, what: str, timeout: float = READY_TIMEOUT, **shards: int) -> dict[str, Any]:
    """Wait until the Workflow's status speaks for its current generation, says Ready, and (for each
    step=count given) has that many shards desired and ready; the Workflow."""

    def ready() -> dict[str, Any]:
        found = cluster.workflow(NAME)
        assert found is not None, "no Workflow"
        status = found.get("status") or {}
        generation = found["metadata"]["generation"]
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        ok = (
            status.get("observedGeneration") == generation
            and conditions.get("Ready", {}).get("status") == "True"
            and conditions["Ready"].get("observedGeneration", generation) == generation
        )
        steps = {s["name"]: s for s in status.get("steps") or []}
        for step, count in shards.items():
            got = steps.get(step, {})
            ok = ok and got.get("desiredShards") == count and got.get("readyShards") == count
        assert ok, f"generation {generation}, status {status}"
        return found

    found: dict[str, Any] = wait(f"Workflow {NAME} to be Ready ({what})", ready, timeout, interval=1)
    return found


def running_pods(cluster: Cluster, pids: set[int], step: str | None = None) -> list[Any]:
    """The Workflow's pods (of `step` only, if given), each Running and ready (and, under the pod runner, a live
    local process)."""
    selector = f"{WORKFLOW_LABEL}={NAME}" + (f",{STEP_LABEL}={step}" if step else "")
    pods = [p for p in cluster.pods(selector) if not (p.metadata and p.metadata.deletion_timestamp)]
    for pod in pods:
        status = pod_status(pod)
        statuses = status.container_statuses or []
        assert status.phase == "Running" and statuses and statuses[0].ready, (
            f"pod {pod_name(pod)} is {status.phase}, ready={[s.ready for s in statuses]}"
        )
        if cluster.runs_pods:
            container_id = statuses[0].container_id
            assert container_id is not None, f"pod {pod_name(pod)} is ready without a container id"
            pid = int(container_id.removeprefix("podrunner://"))
            os.kill(pid, 0)  # raises if the pod's process is not running
            pids.add(pid)
    return pods


def step_role(step_status: int, shard: int, shards: int) -> str:
    return f"{NAME}-{step_status}-consumer-{shard}-of-{shards}"


def holders(cluster: Cluster) -> dict[str, str]:
    """role -> holder identity of every currently held conveyor Lease."""
    from datetime import UTC, datetime

    found = {}
    for role, lease in cluster.leases().items():
        spec = lease.spec
        if spec is None or not spec.holder_identity or spec.renew_time is None:
            continue
        if (datetime.now(UTC) - spec.renew_time).total_seconds() < (spec.lease_duration_seconds or 15):
            found[role] = spec.holder_identity
    return found


def start_runs(cluster: Cluster, tag: str) -> dict[str, str]:
    """One WorkflowRun per sample order, foreign ids made unique; WorkflowRun name -> the sample order's id."""
    suffix = f"{tag}-{uuid.uuid4().hex[:6]}"
    names = {}
    for obj in sample_objects():
        name = f"{obj['id']}-{suffix}"
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "WorkflowRun",
            "metadata": {"name": name, "namespace": cluster.namespace},
            "spec": {"workflow": NAME, "foreignID": name, "object": obj},
        }
        cluster.custom.create_namespaced_custom_object(GROUP, VERSION, cluster.namespace, "workflowruns", body)
        names[name] = obj["id"]
    return names


def wait_runs_finished(cluster: Cluster, runs: dict[str, str], outcomes: dict[str, tuple[str, Any]]) -> None:
    """Every WorkflowRun's run completed at the final status (and with the object) the example's code gives."""
    pending = dict(runs)

    def finished() -> bool:
        for name in list(pending):
            status = cluster.workflow_run(name).get("status") or {}
            if status.get("runState") == "Completed":
                final, _ = outcomes[pending[name]]
                assert status.get("status") == final, f"WorkflowRun {name} completed at {status.get('status')}"
                assert status.get("phase") == "Succeeded", f"WorkflowRun {name}: {status}"
                del pending[name]
        assert not pending, f"not finished: {', '.join(sorted(pending))}"
        return True

    wait(f"{len(runs)} WorkflowRuns to complete", finished, RUNS_TIMEOUT, interval=1)


def scale(cluster: Cluster, step: str, count: int) -> None:
    cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, cluster.namespace, "workflows", NAME, {"spec": {"steps": {step: {"parallelCount": count}}}}
    )


# -- the tests -----------------------------------------------------------------------------------------------------


def test_the_workflow_becomes_ready_with_every_role_held_by_its_pod(
    cluster: Cluster, workflow: dict[str, Any], pids: set[int]
) -> None:
    found = wait_ready(cluster, "first start", CREATED=1, PAID=1)
    steps = {s["name"]: s for s in found["status"]["steps"]}
    assert set(steps) == set(workflow["spec"]["steps"]), steps

    pods = running_pods(cluster, pids)
    by_step: dict[str, list[str]] = {}
    for pod in pods:
        by_step.setdefault(pod.metadata.labels.get(STEP_LABEL, "system"), []).append(pod.metadata.name)
    assert {step for step in by_step if step != "system"} == set(steps), by_step
    assert {step: len(names) for step, names in by_step.items()} == {
        step: STANDBYS if step == STANDBY_STEP else 1 for step in by_step
    }, by_step

    OrderStatus = example().OrderStatus
    held = wait("every step's Lease to be held", lambda: holders(cluster), timeout=30)
    for step, names in by_step.items():
        if step == "system":
            assert set(held.values()) >= set(names), f"the system pod {names} holds no role: {held}"
            continue
        role = step_role(OrderStatus[step].value, 1, 1)
        assert held.get(role) in names, f"role {role} is held by {held.get(role)}, not by one of its pods {names}"


def test_workflowruns_of_the_sample_orders_finish(
    cluster: Cluster, workflow: dict[str, Any], outcomes: dict[str, tuple[str, Any]]
) -> None:
    runs = start_runs(cluster, "a")
    wait_runs_finished(cluster, runs, outcomes)


def test_a_killed_worker_pod_is_replaced_and_its_role_taken_over(
    cluster: Cluster, workflow: dict[str, Any], outcomes: dict[str, tuple[str, Any]], pids: set[int]
) -> None:
    OrderStatus = example().OrderStatus
    role = step_role(OrderStatus.PAID.value, 1, 1)
    (victim,) = cluster.pods(f"{STEP_LABEL}=PAID")
    name = pod_name(victim)
    assert holders(cluster).get(role) == name, f"role {role} is not held by the PAID pod {name}"
    victim_pid = None
    if cluster.runs_pods:
        statuses = pod_status(victim).container_statuses
        assert statuses and statuses[0].container_id, f"the PAID pod {name} has no container id"
        victim_pid = int(statuses[0].container_id.removeprefix("podrunner://"))

    cluster.core.delete_namespaced_pod(name, cluster.namespace)

    def replaced() -> str | None:
        pods = [p for p in cluster.pods(f"{STEP_LABEL}=PAID") if pod_name(p) != name]
        ready = [p for p in pods if (s := pod_status(p).container_statuses) and s[0].ready]
        if not ready:
            return None
        holder = holders(cluster).get(role)
        return holder if holder == pod_name(ready[0]) else None

    successor = wait(f"a new PAID pod holding {role} instead of {name}", replaced, READY_TIMEOUT)
    assert successor != name
    wait(f"the killed pod {name} to be gone", lambda: name not in {pod_name(p) for p in cluster.pods("")}, 60)
    if victim_pid is not None:
        with pytest.raises(ProcessLookupError):
            os.kill(victim_pid, 0)
    running_pods(cluster, pids)
    wait_ready(cluster, "after the PAID pod was replaced", PAID=1)
    wait_runs_finished(cluster, start_runs(cluster, "kill"), outcomes)


def test_scaling_a_step_up_keeps_runs_finishing(
    cluster: Cluster, workflow: dict[str, Any], outcomes: dict[str, tuple[str, Any]], pids: set[int]
) -> None:
    scale(cluster, "CREATED", 2)
    wait_shards(cluster, "CREATED", 2)
    running_pods(cluster, pids, "CREATED")
    wait_runs_finished(cluster, start_runs(cluster, "up"), outcomes)


def test_after_scaling_every_deployment_rolls_out_and_the_workflow_is_ready(
    cluster: Cluster, workflow: dict[str, Any]
) -> None:
    # A new shard count must not leave a rollout stalled: a new pod waiting for a Lease its old pod still holds
    # never becomes ready, so a RollingUpdate of a one-holder role would never finish.
    wait_ready(cluster, "CREATED scaled to 2, every Deployment rolled out", timeout=ROLLOUT_TIMEOUT, CREATED=2)


def test_scaling_a_step_back_down_keeps_runs_finishing(
    cluster: Cluster, workflow: dict[str, Any], outcomes: dict[str, tuple[str, Any]], pids: set[int]
) -> None:
    scale(cluster, "CREATED", 1)
    wait_ready(cluster, "CREATED scaled back to 1", CREATED=1)
    wait(
        "the second CREATED shard's pod to be gone",
        lambda: not cluster.pods(f"{STEP_LABEL}=CREATED,{SHARD_LABEL}=2"),
        GONE_TIMEOUT,
    )
    running_pods(cluster, pids)
    wait_runs_finished(cluster, start_runs(cluster, "down"), outcomes)


def test_deleting_the_workflow_stops_its_pods(cluster: Cluster, workflow: dict[str, Any], pids: set[int]) -> None:
    running_pods(cluster, pids)
    cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, cluster.namespace, "workflows", NAME)
    selector = f"{WORKFLOW_LABEL}={NAME}"
    wait(f"every pod of {NAME} to be stopped and gone", lambda: not cluster.pods(selector), GONE_TIMEOUT)
    if cluster.runs_pods:
        # The pod runner removes a pod only once its process has exited: none of the workers seen is left.
        assert pids, "no worker process was seen"
        for pid in sorted(pids):
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


def test_a_workflow_whose_steps_differ_from_the_code_is_degraded_in_the_workers_words(cluster: Cluster) -> None:
    body = manifest(cluster)
    name = f"{NAME}-drifted"
    body["metadata"]["name"] = name
    # The example's code has no step from REFUNDED: every worker refuses to start and says why.
    body["spec"]["steps"]["REFUNDED"] = {"parallelCount": 1}
    custom = cluster.custom
    custom.create_namespaced_custom_object(GROUP, VERSION, cluster.namespace, "workflows", body)
    try:

        def degraded() -> dict[str, Any]:
            found = cluster.workflow(name)
            assert found is not None, "no Workflow"
            conditions: dict[str, dict[str, Any]] = {
                c["type"]: c for c in (found.get("status") or {}).get("conditions") or []
            }
            condition = conditions.get("Degraded", {})
            assert condition.get("status") == "True" and condition.get("reason") == "CodeMismatch", conditions
            return condition

        condition = wait(f"Workflow {name} to be Degraded with reason CodeMismatch", degraded, READY_TIMEOUT)
        assert "REFUNDED" in condition["message"], condition
    finally:
        custom.delete_namespaced_custom_object(GROUP, VERSION, cluster.namespace, "workflows", name)
    selector = f"{WORKFLOW_LABEL}={name}"
    wait(f"every pod of {name} to be stopped and gone", lambda: not cluster.pods(selector), GONE_TIMEOUT)
