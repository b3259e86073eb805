"""Fixtures of the e2e suite (tests/e2e/cluster.py explains its two modes).

Pod runner mode: the real API server, Postgres (migrated) and Kafka of tests/services.py, the committed CRDs
(tests/operator/conftest.py's `crds`), a fresh namespace with the Postgres DSN in a Secret and the chart's worker
ServiceAccount and Role (templates/worker-rbac.yaml, rendered by helm), and two local processes:
`conveyor-operator` for that namespace, naming that account in the worker pods as the chart's operator does, and
e2e/podrunner.py running its pods, each with a token of its own service account (--service-account-tokens), so
the workers have exactly the chart's permissions; their logs (and every pod's) under artifacts/e2e/<namespace>/.

Cluster mode (CONVEYOR_E2E_CLUSTER=true): the namespace CONVEYOR_E2E_NAMESPACE (default conveyor-e2e, where the
chart gave the workers their ServiceAccount), the DSN and bootstrap servers the pods reach (CONVEYOR_E2E_PG_DSN,
CONVEYOR_E2E_KAFKA) and the image holding examples/order_processing (CONVEYOR_E2E_IMAGE); nothing is started.

A failed test prints `Cluster.dump()`: pods, statuses, Leases, events and the tails of every log."""

from __future__ import annotations

import base64
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, utils
from kubernetes.client.exceptions import ApiException

from tests.chart.conftest import helm, helm_template
from tests.e2e.cluster import EXAMPLE, ROOT, Cluster, Process, cluster_mode, wait
from tests.operator.conftest import crds
from tests.operator.helpers import free_port

# The committed CRDs, applied and Established, and the helm binary (fixtures used in pod runner mode).
__all__ = ["crds", "helm"]

SECRET = "orders-postgres"  # the example manifest's spec.store.secretRef
WORKER_ACCOUNT = "conveyor-worker"  # the chart's default worker.serviceAccount.name
# The image the example manifest names: in pod runner mode, its stand-in filesystem is the example's directory.
EXAMPLE_IMAGE = "orders:0.1.0"
BIN = Path(sys.executable).parent
_FAILED = pytest.StashKey[bool]()


def _secret(api: client.ApiClient, namespace: str, dsn: str) -> None:
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(name=SECRET), data={"dsn": base64.b64encode(dsn.encode()).decode()}
    )
    core = client.CoreV1Api(api)
    try:
        core.create_namespaced_secret(namespace, body)
    except ApiException as e:
        if e.status != 409:
            raise
        core.replace_namespaced_secret(SECRET, namespace, body)


def _worker_rbac(api: client.ApiClient, helm: str, namespace: str) -> None:
    """The chart's worker ServiceAccount, Role and RoleBinding in `namespace`, as `helm install` would make them."""
    objects = helm_template(
        helm,
        "--show-only",
        "templates/worker-rbac.yaml",
        "--set",
        f"worker.namespaces[0]={namespace}",
        release="e2e",
        namespace=namespace,
    )
    assert {o["kind"] for o in objects} == {"ServiceAccount", "Role", "RoleBinding"}, objects
    utils.create_from_yaml(api, yaml_objects=objects, namespace=namespace)  # type: ignore[no-untyped-call]


def _cluster_from_env(api: client.ApiClient) -> Cluster:
    namespace = os.environ.get("CONVEYOR_E2E_NAMESPACE") or "conveyor-e2e"
    missing = [name for name in ("CONVEYOR_E2E_PG_DSN", "CONVEYOR_E2E_KAFKA") if not os.environ.get(name)]
    if missing:
        pytest.fail(
            f"CONVEYOR_E2E_CLUSTER=true needs {' and '.join(missing)}: the Postgres DSN and Kafka bootstrap servers "
            "as the cluster's pods reach them (e2e/kind.sh sets them)",
            pytrace=False,
        )
    try:
        client.CoreV1Api(api).read_namespace(namespace)
    except ApiException as e:
        pytest.fail(f"CONVEYOR_E2E_NAMESPACE: namespace {namespace!r} cannot be read ({e.status} {e.reason})")
    artifacts = ROOT / "artifacts" / "e2e" / namespace
    cluster = Cluster(
        api,
        namespace,
        os.environ["CONVEYOR_E2E_PG_DSN"],
        os.environ["CONVEYOR_E2E_KAFKA"],
        os.environ.get("CONVEYOR_E2E_IMAGE") or EXAMPLE_IMAGE,
        artifacts,
        runs_pods=False,
    )
    _secret(api, namespace, cluster.dsn)
    return cluster


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest, api: client.ApiClient, kubeconfig: str) -> Iterator[Cluster]:
    if cluster_mode():
        yield _cluster_from_env(api)
        return
    dsn: str = request.getfixturevalue("pg_dsn")
    kafka: str = request.getfixturevalue("kafka_bootstrap")
    request.getfixturevalue("crds")
    namespace = f"conveyor-e2e-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    artifacts = ROOT / "artifacts" / "e2e" / namespace
    cluster = Cluster(api, namespace, dsn, kafka, EXAMPLE_IMAGE, artifacts, runs_pods=True)
    try:
        _secret(api, namespace, dsn)
        _worker_rbac(api, request.getfixturevalue("helm"), namespace)
        # Only what the helpers need: nothing of this machine's CONVEYOR_* settings reaches them by accident.
        env = {
            "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "KUBECONFIG": kubeconfig,
        }
        port = free_port()
        operator = Process(
            "the operator",
            [
                str(BIN / "conveyor-operator"),
                "--namespace",
                namespace,
                "--no-leader-election",
                "--liveness",
                f"http://127.0.0.1:{port}/healthz",
            ],
            artifacts / "operator.log",
            # As the chart's operator Deployment does: worker pods run as the chart's worker account.
            {**env, "CONVEYOR_WORKER_SERVICE_ACCOUNT": WORKER_ACCOUNT},
        )
        runner = Process(
            "the pod runner",
            [
                str(BIN / "python"),
                str(ROOT / "e2e" / "podrunner.py"),
                "--kubeconfig",
                kubeconfig,
                "--namespace",
                namespace,
                "--node",
                f"podrunner-{namespace}",
                "--log-dir",
                str(artifacts / "pods"),
                "--image",
                f"{EXAMPLE_IMAGE}={EXAMPLE}",
                "--backoff",
                "2",
                "--delete-node-on-exit",
                "--service-account-tokens",
            ],
            artifacts / "podrunner.log",
            env,
        )
        cluster.helpers += [operator, runner]
        for helper in cluster.helpers:
            helper.start()

        def node_ready() -> bool:
            runner.check_running()
            node = core.read_node(f"podrunner-{namespace}")
            conditions = (node.status.conditions if node.status else None) or []
            return any(c.type == "Ready" and c.status == "True" for c in conditions)

        wait("the pod runner's Node to be Ready", node_ready, timeout=60)
        yield cluster
    finally:
        codes = {helper.name: helper.stop(timeout=60) for helper in reversed(cluster.helpers)}
        try:
            core.delete_namespace(namespace)
        except ApiException as e:
            if e.status != 404:
                raise
    for name, code in codes.items():
        assert code in (0, None), f"{name} exited with {code} when stopped: see {artifacts}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture(autouse=True)
def dump_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a failed test, everything that explains it (shown with the failure)."""
    yield
    if request.node.stash.get(_FAILED, False) and "cluster" in request.fixturenames:
        found: Cluster = request.getfixturevalue("cluster")
        print(found.dump())
