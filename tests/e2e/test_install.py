"""What the README's quick start leaves on the cluster, checked as a user (or their security team) would: the
chart's two operator replicas ready with one leading, the example's WorkflowRun finished where the example's code
says, every worker pod running the real image as its own non-root user on a read-only root file system and acting
as its own service account (a 403 on what the chart's RBAC does not grant), and the web UI's Service answering
through a port-forward with the example's runs.

Runs first in the e2e package (files run in name order): it only reads."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from tests.e2e.cluster import OPERATOR_SELECTOR, WORKFLOW_LABEL, Cluster, pod_name, pod_ready, pod_status, wait
from tests.e2e.outcomes import expected_outcomes

NAME = "order-processing"
WORKER_ACCOUNT = "conveyor-worker"  # the chart's worker.serviceAccount.name

# Run inside a worker pod by its own Python: the pod's service account token against the API server, for what the
# chart's worker Role grants (Leases of its namespace) and what it does not (Secrets, Pods).
TOKEN_PROBE = """
import json, ssl, sys, urllib.error, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
token = open(sa + "/token").read()
namespace = open(sa + "/namespace").read()
context = ssl.create_default_context(cafile=sa + "/ca.crt")
codes = {}
for path in ("apis/coordination.k8s.io/v1/namespaces/%s/leases", "api/v1/namespaces/%s/secrets",
             "api/v1/namespaces/%s/pods"):
    request = urllib.request.Request("https://kubernetes.default.svc/" + path % namespace,
                                     headers={"Authorization": "Bearer " + token})
    try:
        codes[path.split("/")[-1]] = urllib.request.urlopen(request, context=context, timeout=10).status
    except urllib.error.HTTPError as e:
        codes[path.split("/")[-1]] = e.code
print(json.dumps(codes))
"""


def worker_pods(cluster: Cluster) -> list[Any]:
    return [p for p in cluster.pods(f"{WORKFLOW_LABEL}={NAME}") if pod_ready(p)]


def test_the_chart_runs_two_operator_replicas_one_of_them_leading(cluster: Cluster) -> None:
    pods = cluster.pods(OPERATOR_SELECTOR, cluster.release_namespace)
    assert len(pods) == 2 and all(pod_ready(p) for p in pods), [(pod_name(p), pod_status(p).phase) for p in pods]
    lease = cluster.operator_lease()
    assert lease.spec is not None and lease.spec.holder_identity in {pod_name(p) for p in pods}, lease.spec


def test_the_quickstarts_workflowrun_finished_where_the_code_says(cluster: Cluster) -> None:
    final, obj = expected_outcomes()["order-1"]
    status = cluster.workflow_run("order-1").get("status") or {}
    assert (status.get("phase"), status.get("runState"), status.get("status")) == ("Succeeded", "Completed", final)
    assert status.get("runID"), status
    # The run itself, in the example's Postgres: the object the code made.
    (row,) = cluster.psql(
        f"SELECT status, convert_from(object, 'UTF8') FROM conveyor_runs WHERE run_id = '{status['runID']}'"
    )
    assert json.loads(row[1]) == obj, row


def test_worker_pods_run_the_image_non_root_on_a_read_only_root(cluster: Cluster) -> None:
    pods = worker_pods(cluster)
    assert len(pods) >= 7, [pod_name(p) for p in pods]  # 2 shards x 2 of CREATED, 4 other steps, the system
    for pod in pods:
        name = pod_name(pod)
        (container,) = pod.spec.containers
        assert container.image == cluster.image, (name, container.image)
        assert pod.spec.service_account_name == WORKER_ACCOUNT, (name, pod.spec.service_account_name)
        assert container.readiness_probe is not None and container.readiness_probe.http_get.path == "/readyz", name
        assert container.liveness_probe is not None, name
        ids = [cluster.kubectl("-n", cluster.namespace, "exec", name, "--", "id", f).strip() for f in ("-u", "-g")]
        assert ids == ["10001", "10001"], (name, ids)
        refused = cluster.kubectl("-n", cluster.namespace, "exec", name, "--", "touch", "/app/x", check=False)
        assert "Read-only file system" in refused, (name, refused)
        # What a worker writes goes to the emptyDir the operator declares.
        cluster.kubectl("-n", cluster.namespace, "exec", name, "--", "touch", "/tmp/written-by-e2e")
        mounts = {m.mount_path: m.name for m in container.volume_mounts or []}
        volumes = {v.name: v for v in pod.spec.volumes or []}
        assert volumes[mounts["/tmp"]].empty_dir is not None, (name, mounts)


def test_workers_act_as_their_own_service_account_and_nothing_more(cluster: Cluster) -> None:
    name = pod_name(worker_pods(cluster)[0])
    out = cluster.kubectl("-n", cluster.namespace, "exec", name, "--", "python", "-c", TOKEN_PROBE)
    assert json.loads(out) == {"leases": 200, "secrets": 403, "pods": 403}, out


def test_the_ui_service_answers_through_a_port_forward_with_the_examples_runs(cluster: Cluster) -> None:
    service = f"svc/{cluster.release}-ui"
    with cluster.port_forward(service, 80, cluster.release_namespace) as port:

        def get(path: str) -> Any:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
                assert response.status == 200, path
                return json.loads(response.read())

        (workflow,) = wait("the UI's /api/workflows", lambda: get("/api/workflows")["workflows"], timeout=60)
        assert workflow["name"] == NAME
        runs = get(f"/api/runs?workflow={NAME}&foreign_id=order-1")["runs"]
        assert [(r["foreign_id"], r["run_state"]) for r in runs] == [("order-1", "COMPLETED")], runs
