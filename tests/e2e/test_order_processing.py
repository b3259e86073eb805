"""The shipped example on the cluster, driven as a user drives it: the quick start's Workflow
(examples/order_processing/workflow.yaml, as applied: CREATED has two shards with a hot standby each) with every
role held by its own pod, WorkflowRuns of the example's sample orders finishing where the example's code says with
their status mirroring the run, a shard's active worker force-deleted and its standby holding the role within the
lease duration, `kubectl patch --type merge` of `parallelCount` up and down while hundreds of runs are in flight
with every transition stored exactly once (counted in Postgres), and the Workflow's deletion removing every
Deployment it owned.

The tests run in order on the one Workflow, each leaving it Ready for the next; the last deletes it."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.cluster import (
    ARTIFACTS,
    SHARD_LABEL,
    STEP_LABEL,
    WORKFLOW_LABEL,
    Cluster,
    pod_labels,
    pod_name,
    pod_ready,
    wait,
)
from tests.e2e.outcomes import example, outcomes, sample_objects
from tests.helpers import GROUP, VERSION

NAME = "order-processing"
READY_TIMEOUT = 300.0  # a reshard on 2 cores: the old shards stop, the new pods start and take their Leases
RUNS_TIMEOUT = 300.0
GONE_TIMEOUT = 120.0
BATCH_LABEL = "e2e.conveyor.dev/batch"
FLOW_RATE = 25.0  # WorkflowRuns created per second while a step is rescaled
MIN_IN_FLIGHT = 100  # the runs not finished at some moment of the rescaling


# -- helpers -------------------------------------------------------------------------------------------------------


def workflow_ready(cluster: Cluster, **shards: int) -> dict[str, Any]:
    """The Workflow, if its status speaks for its current generation, says Ready, and (for each step=count given)
    has that many shards desired and ready; else an AssertionError saying what it has."""
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


def wait_ready(cluster: Cluster, what: str, timeout: float = READY_TIMEOUT, **shards: int) -> dict[str, Any]:
    """Wait until `workflow_ready`; the Workflow."""
    found: dict[str, Any] = wait(
        f"Workflow {NAME} to be Ready ({what})", lambda: workflow_ready(cluster, **shards), timeout, interval=1
    )
    return found


def step_role(step_status: int, shard: int, shards: int) -> str:
    return f"{NAME}-{step_status}-consumer-{shard}-of-{shards}"


def holders(cluster: Cluster) -> dict[str, str]:
    """role -> holder identity of every currently held conveyor Lease."""
    found = {}
    for role, lease in cluster.leases().items():
        spec = lease.spec
        if spec is None or not spec.holder_identity or spec.renew_time is None:
            continue
        if (datetime.now(UTC) - spec.renew_time).total_seconds() < (spec.lease_duration_seconds or 15):
            found[role] = spec.holder_identity
    return found


def workflow_run(name: str, obj: dict[str, Any], batch: str, ttl: int = 600) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowRun",
        "metadata": {"name": name, "labels": {BATCH_LABEL: batch}},
        "spec": {"workflow": NAME, "foreignID": name, "object": obj, "ttlSecondsAfterFinished": ttl},
    }


def start_runs(cluster: Cluster, tag: str) -> dict[str, str]:
    """One WorkflowRun per sample order, foreign ids made unique; WorkflowRun name -> the sample order's id."""
    batch = f"{tag}-{uuid.uuid4().hex[:6]}"
    names = {}
    for obj in sample_objects():
        name = f"{obj['id']}-{batch}"
        cluster.custom.create_namespaced_custom_object(
            GROUP, VERSION, cluster.namespace, "workflowruns", workflow_run(name, obj, batch)
        )
        names[name] = obj["id"]
    return names


def wait_runs_finished(cluster: Cluster, runs: dict[str, str]) -> None:
    """Every WorkflowRun's run completed at the final status the example's code gives, and its status mirrors the
    run as Postgres has it."""
    pending = dict(runs)
    expected = outcomes()

    def finished() -> bool:
        for name in list(pending):
            status = cluster.workflow_run(name).get("status") or {}
            if status.get("runState") == "Completed":
                assert status.get("status") == expected[pending[name]].final, f"WorkflowRun {name}: {status}"
                assert status.get("phase") == "Succeeded", f"WorkflowRun {name}: {status}"
                del pending[name]
        assert not pending, f"not finished: {', '.join(sorted(pending))}"
        return True

    wait(f"{len(runs)} WorkflowRuns to complete", finished, RUNS_TIMEOUT, interval=1)
    for name, order_id in runs.items():
        status = cluster.workflow_run(name)["status"]
        (row,) = cluster.psql(f"SELECT run_id, run_state, status FROM conveyor_runs WHERE foreign_id = '{name}'")
        codes = example().OrderStatus
        assert row == [status["runID"], "5", str(codes[expected[order_id].final].value)], (name, status, row)


def scale(cluster: Cluster, step: str, count: int) -> None:
    """`kubectl patch --type merge` of the step's parallelCount, as a user scales it."""
    patch = json.dumps({"spec": {"steps": {step: {"parallelCount": count}}}})
    cluster.kubectl("-n", cluster.namespace, "patch", "workflow", NAME, "--type", "merge", "-p", patch)


class Flow:
    """WorkflowRuns created at a steady rate from a thread (foreign ids flow-<tag>-NNNNN), until stopped; and how
    many of their runs Postgres has unfinished, sampled as they flow."""

    def __init__(self, cluster: Cluster, tag: str) -> None:
        self.cluster = cluster
        self.tag = tag
        self.created: dict[str, str] = {}  # foreign id -> sample order id
        self.in_flight_seen = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._create, name=f"flow-{tag}", daemon=True)

    def __enter__(self) -> Flow:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _create(self) -> None:
        samples = sample_objects()
        start = time.monotonic()
        try:
            while not self._stop.is_set():
                i = len(self.created)
                obj = samples[i % len(samples)]
                name = f"flow-{self.tag}-{i:05d}"
                # Each WorkflowRun is deleted a minute after its run finished: Postgres keeps the history.
                body = workflow_run(name, obj, f"flow-{self.tag}", ttl=60)
                self.cluster.custom.create_namespaced_custom_object(
                    GROUP, VERSION, self.cluster.namespace, "workflowruns", body
                )
                self.created[name] = obj["id"]
                delay = start + (i + 1) / FLOW_RATE - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
        except BaseException as e:  # the test thread reports it
            self.error = e

    def in_flight(self) -> int:
        """Runs of this flow that Postgres has not completed yet, plus those not triggered yet."""
        ((unfinished, stored),) = self.cluster.psql(
            "SELECT count(*) FILTER (WHERE run_state IN (1, 2, 3)), count(*) FROM conveyor_runs "
            f"WHERE workflow_name = '{NAME}' AND foreign_id LIKE 'flow-{self.tag}-%'"
        )
        now = int(unfinished) + len(self.created) - int(stored)
        self.in_flight_seen = max(self.in_flight_seen, now)
        return now

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        if self.error is not None:
            raise AssertionError(f"creating WorkflowRuns failed: {self.error!r}") from self.error


def wait_shards_while_flowing(cluster: Cluster, flow: Flow, what: str, **shards: int) -> None:
    def ready() -> dict[str, Any]:
        flow.in_flight()
        assert flow.error is None, flow.error
        return workflow_ready(cluster, **shards)

    wait(f"Workflow {NAME} Ready ({what}) with runs flowing", ready, READY_TIMEOUT, interval=2)


# -- the tests -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workflow(cluster: Cluster) -> dict[str, Any]:
    """The quick start's Workflow, as applied."""
    found = cluster.workflow(NAME)
    assert found is not None, f"no Workflow {NAME}: the quick start applies it"
    return found


def test_the_workflow_is_ready_with_every_role_held_by_its_pod(cluster: Cluster, workflow: dict[str, Any]) -> None:
    shards = {step: entry["parallelCount"] for step, entry in workflow["spec"]["steps"].items()}
    replicas = {step: entry.get("replicasPerShard", 1) for step, entry in workflow["spec"]["steps"].items()}
    wait_ready(cluster, "as applied", **shards)

    pods = [p for p in cluster.pods(f"{WORKFLOW_LABEL}={NAME}") if pod_ready(p)]
    by_role: dict[tuple[str, str], list[str]] = {}
    for pod in pods:
        labels = pod_labels(pod)
        by_role.setdefault((labels.get(STEP_LABEL, "system"), labels.get(SHARD_LABEL, "")), []).append(pod_name(pod))
    expected = {(step, str(k)): replicas[step] for step, n in shards.items() for k in range(1, n + 1)}
    assert {key: len(names) for key, names in by_role.items() if key[0] != "system"} == expected, by_role

    OrderStatus = example().OrderStatus
    held = wait("every step's Lease to be held", lambda: holders(cluster), timeout=30)
    for (step, shard), names in by_role.items():
        if step == "system":
            assert set(held.values()) >= set(names), f"the system pod {names} holds no role: {held}"
            continue
        role = step_role(OrderStatus[step].value, int(shard), shards[step])
        assert held.get(role) in names, f"role {role} is held by {held.get(role)}, not by one of its pods {names}"


def test_workflowruns_of_the_sample_orders_finish_and_mirror_their_runs(
    cluster: Cluster, workflow: dict[str, Any]
) -> None:
    wait_runs_finished(cluster, start_runs(cluster, "a"))


def test_a_force_deleted_active_worker_hands_its_role_to_its_standby(
    cluster: Cluster, workflow: dict[str, Any]
) -> None:
    OrderStatus = example().OrderStatus
    shards = workflow["spec"]["steps"]["CREATED"]["parallelCount"]
    role = step_role(OrderStatus.CREATED.value, 1, shards)
    pods = [p for p in cluster.pods(f"{STEP_LABEL}=CREATED,{SHARD_LABEL}=1") if pod_ready(p)]
    assert len(pods) == 2, [pod_name(p) for p in pods]  # the active worker and its hot standby
    active = holders(cluster).get(role)
    assert active is not None, f"no pod holds {role}"
    (standby,) = [pod_name(p) for p in pods if pod_name(p) != active]
    lease = cluster.leases()[role].spec
    assert lease is not None and lease.lease_duration_seconds, role
    duration = lease.lease_duration_seconds

    start = time.monotonic()
    cluster.kubectl("-n", cluster.namespace, "delete", "pod", active, "--grace-period=0", "--force")

    def successor() -> str | None:
        holder = holders(cluster).get(role)
        return holder if holder and holder != active else None

    new = wait(f"a pod other than {active} to hold {role}", successor, duration + 30)
    took = time.monotonic() - start
    # Whether the killed holder released its Lease (the kubelet still sends SIGTERM on a forced delete) or its
    # Lease expired after the lease duration, the standby, which looks at least every 2 s, or the pod replacing
    # the killed one takes it: whichever looks first, never both.
    assert took <= duration + 5, f"the role was held again after {took:.1f}s, over a lease duration of {duration}s"
    shard = {pod_name(p) for p in cluster.pods(f"{STEP_LABEL}=CREATED,{SHARD_LABEL}=1")}
    assert new in shard - {active}, (new, shard)
    assert new == standby or standby in shard, f"the standby {standby} is gone"
    wait_runs_finished(cluster, start_runs(cluster, "kill"))
    wait_ready(cluster, "the killed pod replaced by a new standby", CREATED=shards)


def test_scaling_a_step_up_and_down_while_runs_flow_stores_every_transition_once(
    cluster: Cluster, workflow: dict[str, Any]
) -> None:
    original = workflow["spec"]["steps"]["CREATED"]["parallelCount"]
    tag = uuid.uuid4().hex[:6]
    with Flow(cluster, tag) as flow:
        time.sleep(5)
        scale(cluster, "CREATED", original + 1)
        wait_shards_while_flowing(cluster, flow, f"CREATED scaled up to {original + 1}", CREATED=original + 1)
        scale(cluster, "CREATED", 1)
        wait_shards_while_flowing(cluster, flow, "CREATED scaled down to 1", CREATED=1)
        time.sleep(5)
    try:
        assert flow.in_flight_seen >= MIN_IN_FLIGHT, f"at most {flow.in_flight_seen} runs were in flight"

        def drained() -> bool:
            assert flow.in_flight() == 0, f"{flow.in_flight()} of {len(flow.created)} runs not finished"
            return True

        wait(f"all {len(flow.created)} runs to complete", drained, RUNS_TIMEOUT, interval=2)
        # Counted in Postgres: every run stored each transition the example's code makes, once, in order.
        rows = cluster.psql(
            "SELECT r.foreign_id, h.version, h.run_state, h.status FROM conveyor_run_history h "
            "JOIN conveyor_runs r ON r.run_id = h.run_id "
            f"WHERE r.workflow_name = '{NAME}' AND r.foreign_id LIKE 'flow-{tag}-%' ORDER BY 1, 2"
        )
        paths: dict[str, list[tuple[int, int]]] = {}
        for foreign_id, version, run_state, status in rows:
            assert int(version) == len(paths.setdefault(foreign_id, [])) + 1, (foreign_id, version)
            paths[foreign_id].append((int(run_state), int(status)))
        expected = outcomes()
        assert set(paths) == set(flow.created), "runs lost or unknown"
        wrong = {
            foreign_id: path
            for foreign_id, path in paths.items()
            if tuple(path) != expected[flow.created[foreign_id]].path
        }
        assert not wrong, f"{len(wrong)} of {len(paths)} runs stored other transitions, e.g. {list(wrong.items())[:3]}"
        figures = {"runs": len(flow.created), "max_in_flight": flow.in_flight_seen, "transitions": len(rows)}
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "scaling-while-flowing.json").write_text(json.dumps(figures) + "\n")
    finally:
        scale(cluster, "CREATED", original)
        wait_ready(cluster, f"CREATED back to {original}", CREATED=original)
        # Most are gone already (ttlSecondsAfterFinished): the rest are deleted in the background.
        selector = f"{BATCH_LABEL}=flow-{tag}"
        cluster.kubectl("-n", cluster.namespace, "delete", "workflowruns", "-l", selector, "--wait=false")


def test_deleting_the_workflow_removes_every_deployment_it_owned(cluster: Cluster, workflow: dict[str, Any]) -> None:
    selector = f"{WORKFLOW_LABEL}={NAME}"
    owned = cluster.apps.list_namespaced_deployment(cluster.namespace, label_selector=selector).items
    assert len(owned) >= 6, len(owned)
    cluster.kubectl("-n", cluster.namespace, "delete", "workflow", NAME, "--wait=true", timeout=GONE_TIMEOUT)

    def gone() -> bool:
        left = cluster.apps.list_namespaced_deployment(cluster.namespace, label_selector=selector).items
        assert not left, [(d.metadata or client.V1ObjectMeta()).name for d in left]
        assert not cluster.pods(selector), [pod_name(p) for p in cluster.pods(selector)]
        return True

    wait(f"every Deployment and pod of {NAME} to be gone", gone, GONE_TIMEOUT)
