"""What the e2e tests know about the cluster they run on, and how they act on it: as a user does, with kubectl and
helm (the binaries on the PATH the suite was given) and the API server, never with a stand-in.

The cluster is a kind cluster made by scripts/kind.sh and set up by the README's Kubernetes quick start
(tests/e2e/conftest.py), or any cluster set up the same way (e2e/README.md). Every wait says what it waited for;
`dump` writes what explains a failure under artifacts/e2e/<test>/: `kubectl describe` of the pods, every
container's logs (and its previous container's), the Events, the Leases, the conveyor objects, and kind's own
export of the node's logs."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.helpers import GROUP, ROOT, VERSION

EXAMPLE = ROOT / "examples" / "order_processing"
ARTIFACTS = ROOT / "artifacts" / "e2e"
WORKFLOW_LABEL = "conveyor.dev/workflow"
STEP_LABEL = "conveyor.dev/step"
SHARD_LABEL = "conveyor.dev/shard"
ROLE_ANNOTATION = "conveyor.dev/role"
OPERATOR_SELECTOR = "app.kubernetes.io/component=operator"


def wait(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """`check()`'s first truthy result; after `timeout` seconds fails naming `what` and the last result seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except (AssertionError, ApiException, urllib3.exceptions.HTTPError) as e:
            last = e  # an API server or a pod in the middle of a change is a reason to look again, not a failure
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f}s for {what}; last seen: {last!r}", pytrace=False)
        time.sleep(interval)


def pod_name(pod: client.V1Pod) -> str:
    """The name of a pod the API server returned (the client's model makes every field Optional)."""
    assert pod.metadata is not None and pod.metadata.name is not None, pod
    return pod.metadata.name


def pod_status(pod: client.V1Pod) -> client.V1PodStatus:
    """A pod's status, empty until the kubelet has written one."""
    return pod.status or client.V1PodStatus()


def pod_labels(pod: client.V1Pod) -> dict[str, str]:
    return dict((pod.metadata.labels if pod.metadata else None) or {})


def container_status(pod: client.V1Pod) -> client.V1ContainerStatus:
    """The status of a one-container pod's container (an AssertionError before the kubelet wrote one)."""
    statuses = pod_status(pod).container_statuses or []
    assert len(statuses) == 1, f"pod {pod_name(pod)}: {statuses}"
    return statuses[0]


def pod_ready(pod: client.V1Pod) -> bool:
    """Running, not being deleted, and every container ready (what a Service and a rollout count)."""
    statuses = pod_status(pod).container_statuses or []
    deleting = pod.metadata is not None and pod.metadata.deletion_timestamp is not None
    return pod_status(pod).phase == "Running" and not deleting and bool(statuses) and all(s.ready for s in statuses)


@dataclass
class Cluster:
    """The cluster under test: an API client, the tools' environment, and where the quick start put things."""

    api: client.ApiClient
    env: dict[str, str]  # KUBECONFIG and a PATH with kubectl and helm
    namespace: str  # the example's namespace (its Workflow, Postgres, Kafka)
    release: str  # the chart's release name
    release_namespace: str  # and namespace (the operator, the UI)
    image: str  # the example's image
    kind_cluster: str | None  # the kind cluster's name, when scripts/kind.sh made it

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def coordination(self) -> client.CoordinationV1Api:
        return client.CoordinationV1Api(self.api)

    # -- the user's tools ----------------------------------------------------------------------------------------

    def run(self, *argv: str, timeout: float = 120, check: bool = True, stdin: str | None = None) -> str:
        """A command with the cluster's environment; its output. A failure shows the command and what it said."""
        done = subprocess.run(
            argv, env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, input=stdin, check=False
        )
        if check and done.returncode != 0:
            pytest.fail(
                f"{' '.join(argv)} exited with {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}",
                pytrace=False,
            )
        return done.stdout + (done.stderr if not check else "")

    def kubectl(self, *args: str, timeout: float = 120, check: bool = True, stdin: str | None = None) -> str:
        return self.run("kubectl", *args, timeout=timeout, check=check, stdin=stdin)

    def helm(self, *args: str, timeout: float = 600) -> str:
        return self.run("helm", *args, timeout=timeout)

    def psql(self, sql: str) -> list[list[str]]:
        """Rows of a query run by psql in the example's Postgres pod (tab-separated, unaligned)."""
        out = self.kubectl(
            "-n", self.namespace, "exec", "deploy/postgres", "--", "psql", "-h", "/tmp", "-U", "conveyor",
            "-d", "conveyor", "-v", "ON_ERROR_STOP=1", "-AtF", "\t", "-c", sql,
        )  # fmt: skip
        return [line.split("\t") for line in out.splitlines() if line]

    @contextlib.contextmanager
    def port_forward(self, target: str, port: int, namespace: str) -> Iterator[int]:
        """`kubectl port-forward TARGET :PORT`, as a user reaches a Service from their machine; the local port."""
        process = subprocess.Popen(
            ["kubectl", "-n", namespace, "port-forward", "--address", "127.0.0.1", target, f":{port}"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> PORT"
            found = re.search(r"127\.0\.0\.1:(\d+)", line)
            if not found:
                pytest.fail(f"kubectl port-forward {target} said: {line}{process.stdout.read()}", pytrace=False)
            yield int(found.group(1))
        finally:
            process.terminate()
            process.wait(10)

    # -- objects -------------------------------------------------------------------------------------------------

    # The client types a custom object as `object`; the API server answers with the object's JSON.

    def workflow(self, name: str) -> dict[str, Any] | None:
        try:
            found = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, "workflows", name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return cast(dict[str, Any], found)

    def workflow_run(self, name: str) -> dict[str, Any]:
        found = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, "workflowruns", name)
        return cast(dict[str, Any], found)

    def custom_objects(self, plural: str, selector: str = "") -> list[dict[str, Any]]:
        listed = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, label_selector=selector
        )
        return cast(list[dict[str, Any]], cast(dict[str, Any], listed)["items"])

    def pods(self, selector: str, namespace: str | None = None) -> list[client.V1Pod]:
        return list(self.core.list_namespaced_pod(namespace or self.namespace, label_selector=selector).items)

    def lease(self, name: str, namespace: str) -> client.V1Lease:
        return self.coordination.read_namespaced_lease(name, namespace)

    def leases(self) -> dict[str, client.V1Lease]:
        """The conveyor Leases of the example's namespace by role."""
        found: dict[str, client.V1Lease] = {}
        for lease in self.coordination.list_namespaced_lease(self.namespace).items:
            role = ((lease.metadata.annotations if lease.metadata else None) or {}).get(ROLE_ANNOTATION)
            if role:
                found[role] = lease
        return found

    def operator_lease(self) -> client.V1Lease:
        return self.lease(f"{self.release}-leader", self.release_namespace)

    # -- failure dumps -------------------------------------------------------------------------------------------

    def dump(self, name: str) -> Path:
        """Everything that explains a failed test, as files under artifacts/e2e/NAME/; the directory."""
        out = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        out.mkdir(parents=True, exist_ok=True)

        def save(file: str, *args: str) -> None:
            try:
                text = self.kubectl(*args, check=False, timeout=60)
            except Exception as e:  # a dump must never hide the failure it explains
                text = f"({' '.join(args)}: {e!r})"
            (out / file).write_text(text)

        for namespace in dict.fromkeys((self.namespace, self.release_namespace, "kube-system")):
            save(f"{namespace}.pods.txt", "-n", namespace, "get", "pods", "-o", "wide")
            save(f"{namespace}.describe-pods.txt", "-n", namespace, "describe", "pods")
            save(f"{namespace}.events.txt", "-n", namespace, "get", "events", "--sort-by=.lastTimestamp", "-o", "wide")
            save(f"{namespace}.leases.yaml", "-n", namespace, "get", "leases", "-o", "yaml")
            save(f"{namespace}.deployments.txt", "-n", namespace, "describe", "deployments")
            logs = out / f"{namespace}.logs"
            logs.mkdir(exist_ok=True)
            try:
                pods = self.core.list_namespaced_pod(namespace).items
            except Exception as e:
                (logs / "error.txt").write_text(repr(e))
                pods = []
            for pod in pods:
                containers = [c.name for c in (pod.spec.containers if pod.spec else [])]
                for container in containers:
                    base = f"{pod_name(pod)}.{container}"
                    save(f"{namespace}.logs/{base}.log", "-n", namespace, "logs", pod_name(pod), "-c", container)
                    restarted = any(
                        s.name == container and s.restart_count for s in (pod_status(pod).container_statuses or [])
                    )
                    if restarted:
                        save(
                            f"{namespace}.logs/{base}.previous.log",
                            "-n", namespace, "logs", pod_name(pod), "-c", container, "--previous",
                        )  # fmt: skip
        save(f"{self.namespace}.conveyor.yaml", "-n", self.namespace, "get", "workflows,workflowruns", "-o", "yaml")
        save("nodes.txt", "describe", "nodes")
        if self.kind_cluster:
            subprocess.run(
                ["bash", str(ROOT / "scripts" / "kind.sh"), "export-logs", str(out / "kind")],
                env={**self.env, "CONVEYOR_KIND_CLUSTER": self.kind_cluster},
                capture_output=True,
                timeout=300,
                check=False,
            )
        return out


def environment(kubeconfig: str, path: str | None = None) -> dict[str, str]:
    """The environment of the suite's kubectl and helm: this one's, with the cluster's kubeconfig."""
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    if path:
        env["PATH"] = path
    return env
