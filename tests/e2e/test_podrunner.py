"""e2e/podrunner.py itself, on the real API server (pod runner mode only: in a real cluster the kubelet runs pods):
a pod's env resolved as the kubelet resolves it, its probe run on its own port, its process acting as the pod's
service account (a bound token) and as nothing more, a crashed container restarted with
its exit code and termination message in the status, a deleted pod's process sent SIGTERM (and SIGKILL after
the grace period when it ignores it) before the pod goes, and bad arguments refused, naming the option."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.cluster import ROOT, Cluster, wait

pytestmark = pytest.mark.usefixtures("runner_mode")
TIMEOUT = 60.0


@pytest.fixture
def runner_mode(cluster: Cluster) -> None:
    if not cluster.runs_pods:
        pytest.skip("the pod runner's own tests: this cluster's kubelet runs the pods")


def pod(name: str, mode: str, marker: Path, **extra: Any) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "app",
        "image": "podrunner-test:1",
        "command": ["python", "-m", "tests.e2e.pod_app"],
        "args": [mode, str(marker)],
        "workingDir": str(ROOT),
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
        "terminationMessagePath": "/dev/termination-log",
    }
    container.update(extra.pop("container", {}))
    return {"metadata": {"name": name}, "spec": {"containers": [container], **extra}}


def create(cluster: Cluster, body: dict[str, Any]) -> str:
    # The manifest as YAML spells it, validated into the client's model as the client does with a dict.
    cluster.core.create_namespaced_pod(cluster.namespace, client.V1Pod.model_validate(body))
    return str(body["metadata"]["name"])


def container_status(cluster: Cluster, name: str) -> Any:
    found = cluster.core.read_namespaced_pod(name, cluster.namespace)
    assert found.status is not None, f"pod {name} has no status yet"
    statuses = found.status.container_statuses or []
    assert statuses, f"pod {name} has no container status yet ({found.status.phase})"
    return statuses[0]


def ready(cluster: Cluster, name: str) -> Any:
    status = container_status(cluster, name)
    assert status.ready, f"pod {name}: {status.state}"
    return status


def gone(cluster: Cluster, name: str) -> bool:
    return name not in {p.metadata.name for p in cluster.pods("") if p.metadata is not None}


def logged_env(cluster: Cluster, name: str) -> dict[str, str]:
    log = cluster.artifacts / "pods" / f"{cluster.namespace}_{name}_app.log"
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    assert lines, f"{log} has no environment line yet"
    found: dict[str, str] = json.loads(lines[-1])
    return found


def test_env_is_resolved_and_the_probe_reaches_the_pods_own_port(cluster: Cluster, tmp_path: Path) -> None:
    core = cluster.core
    core.create_namespaced_secret(
        cluster.namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="runner-secret"), data={"k": base64.b64encode(b"s3").decode()}
        ),
    )
    core.create_namespaced_config_map(
        cluster.namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="runner-cm"), data={"k": "c1"})
    )
    env = [
        {"name": "PLAIN", "value": "p"},
        {"name": "EXPANDED", "value": "$(PLAIN)-x-$$(PLAIN)-$(UNDEFINED)"},
        {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "runner-secret", "key": "k"}}},
        {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "runner-cm", "key": "k"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "CONVEYOR_PORT", "value": "8080"},
    ]
    envfrom = [{"configMapRef": {"name": "runner-cm"}, "prefix": "CM_"}]
    name = create(cluster, pod("env", "serve", tmp_path / "marker", container={"env": env, "envFrom": envfrom}))
    status = wait(f"pod {name} to be ready", lambda: ready(cluster, name), TIMEOUT)
    assert status.restart_count == 0 and status.state.running is not None

    seen = logged_env(cluster, name)
    assert seen["PLAIN"] == "p"
    assert seen["EXPANDED"] == "p-x-$(PLAIN)-$(UNDEFINED)"
    assert (seen["FROM_SECRET"], seen["FROM_CM"], seen["CM_k"]) == ("s3", "c1", "c1")
    assert (seen["POD"], seen["NS"]) == (name, cluster.namespace)
    # Its own free port, not the container port: several pods share this host.
    assert seen["CONVEYOR_PORT"] != "8080" and int(seen["CONVEYOR_PORT"]) > 0
    assert not any(key.startswith("CONVEYOR_PG") or key == "CONVEYOR_KAFKA" for key in seen), "the runner's env leaked"
    found = core.read_namespaced_pod(name, cluster.namespace)
    assert found.spec is not None and found.status is not None
    assert found.spec.node_name == f"podrunner-{cluster.namespace}"
    assert {c.type: c.status for c in found.status.conditions or []}["Ready"] == "True"
    core.delete_namespaced_pod(name, cluster.namespace)
    wait(f"pod {name} to be gone", lambda: gone(cluster, name), TIMEOUT)


def test_a_pod_acts_as_its_own_service_account_and_nothing_more(cluster: Cluster, tmp_path: Path) -> None:
    from kubernetes import config

    core, namespace = cluster.core, cluster.namespace
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="runner-sa"))
    )
    env = [{"name": "CONVEYOR_PORT", "value": "8080"}]
    as_sa = pod("as-sa", "serve", tmp_path / "marker", container={"env": env}, serviceAccountName="runner-sa")
    name = create(cluster, as_sa)
    wait(f"pod {name} to be ready", lambda: ready(cluster, name), TIMEOUT)
    kubeconfig = Path(logged_env(cluster, name)["KUBECONFIG"])
    assert kubeconfig.stat().st_mode & 0o077 == 0, "the token is readable by others"
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
    with client.ApiClient(configuration) as as_pod:
        review = client.AuthenticationV1Api(as_pod).create_self_subject_review(client.V1SelfSubjectReview())
        assert review.status is not None and review.status.user_info is not None, review
        user = review.status.user_info
        assert user.username == f"system:serviceaccount:{namespace}:runner-sa"
        # Bound to the pod, as the kubelet's projected token is.
        assert user.extra is not None, user
        assert user.extra["authentication.kubernetes.io/pod-name"] == [name]
        # The account was granted nothing: it may not even read the pods of its own namespace.
        with pytest.raises(client.ApiException) as info:
            client.CoreV1Api(as_pod).list_namespaced_pod(namespace)
        assert info.value.status == 403

    no_token = pod("no-token", "serve", tmp_path / "m2", container={"env": env}, automountServiceAccountToken=False)
    other = create(cluster, no_token)
    wait(f"pod {other} to be ready", lambda: ready(cluster, other), TIMEOUT)
    assert "KUBECONFIG" not in logged_env(cluster, other)
    for pod_name in (name, other):
        core.delete_namespaced_pod(pod_name, namespace)
    wait("both pods to be gone", lambda: gone(cluster, name) and gone(cluster, other), TIMEOUT)


def test_a_crashed_container_is_restarted_with_its_exit_code_and_termination_message(
    cluster: Cluster, tmp_path: Path
) -> None:
    env = [{"name": "CONVEYOR_PORT", "value": "8080"}]
    name = create(cluster, pod("crash", "crash-once", tmp_path / "marker", container={"env": env}))

    def restarted() -> Any:
        status = ready(cluster, name)
        assert status.restart_count == 1, status
        return status

    status = wait(f"pod {name} to be restarted once and ready", restarted, TIMEOUT)
    assert status.last_state.terminated.exit_code == 3
    assert status.last_state.terminated.message == "boom"
    cluster.core.delete_namespaced_pod(name, cluster.namespace)
    wait(f"pod {name} to be gone", lambda: gone(cluster, name), TIMEOUT)


def test_a_deleted_pods_process_gets_sigterm_before_the_pod_goes(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    env = [{"name": "CONVEYOR_PORT", "value": "8080"}]
    name = create(cluster, pod("graceful", "serve", marker, container={"env": env}))
    wait(f"pod {name} to be ready", lambda: ready(cluster, name), TIMEOUT)
    cluster.core.delete_namespaced_pod(name, cluster.namespace)
    wait(f"pod {name} to be gone", lambda: gone(cluster, name), TIMEOUT)
    assert marker.read_text() == "SIGTERM"


def test_a_process_ignoring_sigterm_is_killed_after_the_grace_period(cluster: Cluster, tmp_path: Path) -> None:
    env = [{"name": "CONVEYOR_PORT", "value": "8080"}]
    body = pod("stubborn", "stubborn", tmp_path / "marker", container={"env": env}, terminationGracePeriodSeconds=1)
    name = create(cluster, body)
    status = wait(f"pod {name} to be ready", lambda: ready(cluster, name), TIMEOUT)
    pid = int(status.container_id.removeprefix("podrunner://"))
    cluster.core.delete_namespaced_pod(name, cluster.namespace)
    wait(f"pod {name} to be gone", lambda: gone(cluster, name), TIMEOUT)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    log = (cluster.artifacts / "podrunner.log").read_text()
    assert f"pod {cluster.namespace}/{name}: still running after 1s: SIGKILL" in log


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--image", "orders:1"], "--image: expected IMAGE=DIRECTORY"),
        (["--image", "orders:1=/no/such/dir"], "is not a directory"),
        (["--backoff", "-1"], "--backoff: expected a positive number of seconds"),
        (["--kubeconfig", "/no/such/kubeconfig"], "--kubeconfig: expected a readable kubeconfig file"),
    ],
)
def test_bad_arguments_exit_2_naming_the_option_and_register_nothing(
    cluster: Cluster, tmp_path: Path, args: list[str], named: str
) -> None:
    node = f"podrunner-bad-{tmp_path.name[-8:].lower().replace('_', '-')}"
    argv = [sys.executable, str(ROOT / "e2e" / "podrunner.py"), "--namespace", cluster.namespace]
    argv += ["--node", node, "--log-dir", str(tmp_path)]
    done = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert named in done.stderr, done.stderr
    assert node not in {n.metadata.name for n in cluster.core.list_node().items if n.metadata is not None}
