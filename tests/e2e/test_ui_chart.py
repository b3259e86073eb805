"""The Helm chart's web UI (`ui.enabled`) as a pod: the chart's UI Deployment and Service, rendered by helm with the
DSN Secret of the test namespace and the shipped example as its entrypoint, run by the pod runner; the pod becomes
Ready through its /readyz probe, and the UI shows the example's workflow (loaded from ui.entrypoints and ui.paths)
and a run stored in the test Postgres, answering by its pod address and by its Service's DNS names, and refusing a
host name it was not given.

Pod runner mode only: the UI's port is the local one the pod runner gave it (a real cluster would need a
port-forward, which the kind mode of this suite does not set up)."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from conveyor import RunState
from conveyor._core.records import Meta, Record
from tests.chart.conftest import helm, helm_template
from tests.e2e.cluster import EXAMPLE, Cluster, pod_name, pod_status, tail, wait
from tests.e2e.conftest import SECRET

__all__ = ["helm"]  # the helm binary (a fixture), for rendering the chart

RELEASE = "e2e-ui"
NAME = f"{RELEASE}-conveyor-ui"
TIMEOUT = 120.0


def rendered(helm: str, namespace: str) -> list[dict[str, Any]]:
    return helm_template(
        helm,
        "--set",
        "ui.enabled=true",
        "--set",
        f"ui.dsnSecretRef.name={SECRET}",
        "--set",
        "ui.dsnSecretRef.key=dsn",
        "--set",
        "ui.entrypoints={orders.workflow:builder}",
        "--set",
        f"ui.paths={{{EXAMPLE}}}",
        "--show-only",
        "templates/ui-deployment.yaml",
        "--show-only",
        "templates/ui-service.yaml",
        release=RELEASE,
        namespace=namespace,
    )


def store_run(dsn: str, workflow: str, foreign_id: str) -> str:
    """A run at status 1, written as the engine writes one. Its workflow is the test's own: no worker of any
    namespace sharing this database acts on it (the example's would, and move it on)."""
    from conveyor.adapters.postgres import PostgresRecordStore

    run_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    raw = json.dumps({"id": foreign_id}).encode()

    async def write() -> None:
        store = PostgresRecordStore(dsn)
        await store.open()
        try:
            await store.store(
                Record(workflow, foreign_id, run_id, RunState.INITIATED, 1, raw, now, now, Meta(version=1))
            )
        finally:
            await store.close()

    asyncio.run(write())
    return run_id


def get(port: int, path: str, host: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_the_charts_ui_pod_serves_the_runs(cluster: Cluster, helm: str) -> None:
    if not cluster.runs_pods:
        pytest.skip("pod runner mode only: a real cluster's UI pod is reached through a port-forward")
    namespace = cluster.namespace
    objects = rendered(helm, namespace)
    assert sorted(o["kind"] for o in objects) == ["Deployment", "Service"]
    apps = client.AppsV1Api(cluster.api)
    for obj in objects:
        # The rendered manifests validated into the client's models, as the client does with a dict.
        if obj["kind"] == "Deployment":
            apps.create_namespaced_deployment(namespace, client.V1Deployment.model_validate(obj))
        else:
            cluster.core.create_namespaced_service(namespace, client.V1Service.model_validate(obj))
    selector = f"app.kubernetes.io/component=ui,app.kubernetes.io/instance={RELEASE}"
    try:

        def ready_pod() -> str | None:
            for pod in cluster.pods(selector):
                statuses = pod_status(pod).container_statuses or []
                if statuses and statuses[0].ready:
                    return pod_name(pod)
            return None

        pod = wait("the UI pod to be Ready (its /readyz probe answering 200)", ready_pod, TIMEOUT)
        log = cluster.artifacts / "pods" / f"{namespace}_{pod}_ui.log"

        def port() -> int | None:
            found = re.search(r"conveyor ui: http://0\.0\.0\.0:(\d+)/ \(actions off\)", tail(log, 200))
            return int(found.group(1)) if found else None

        local = wait(f"the UI to say where it listens in {log}", port, TIMEOUT)
        assert get(local, "/readyz") == (200, "ready\n")

        # The example's code, loaded through ui.entrypoints and ui.paths, gives its workflow's statuses.
        status, body = get(local, "/api/workflows")
        assert status == 200, body
        (example,) = json.loads(body)["workflows"]
        assert example["name"] == "order-processing"
        assert {"name": "CREATED", "value": 1} in [{k: s[k] for k in ("name", "value")} for s in example["statuses"]]

        workflow = f"ui-e2e-{uuid.uuid4().hex[:8]}"
        run_id = store_run(cluster.dsn, workflow, "order-1")
        status, body = get(local, f"/api/runs?workflow={workflow}")
        assert status == 200, body
        (run,) = json.loads(body)["runs"]
        assert (run["run_id"], run["foreign_id"], run["run_state"]) == (run_id, "order-1", "INITIATED")

        # Addressed by its Service's names (the chart's --allowed-host), but not by a name it was not given.
        for host in (NAME, f"{NAME}.{namespace}.svc.cluster.local"):
            assert get(local, "/readyz", host=host) == (200, "ready\n"), host
        status, body = get(local, "/api/runs", host="rebound.example.com")
        assert status == 403, body
    finally:
        apps.delete_namespaced_deployment(NAME, namespace)
        cluster.core.delete_namespaced_service(NAME, namespace)
    wait("the UI pod to be gone", lambda: not cluster.pods(selector), TIMEOUT)
