"""What the e2e tests know about the cluster they run on, in either of the two modes (e2e/README.md):

- pod runner (the default, CI): the development control plane of scripts/kube.sh has no scheduler and no kubelet,
  so the suite runs the operator (`conveyor-operator`) and e2e/podrunner.py as local processes, and the worker pods
  become local processes in the project's venv;
- cluster (CONVEYOR_E2E_CLUSTER=true, e2e/kind.sh): a real cluster where the Helm chart runs the operator and the
  kubelet runs the pods from an image; the suite starts nothing and only talks to the API server.

Every wait says what it waited for, and `dump` gathers what explains a failure (pods, the Workflow's status,
WorkflowRuns, the pods' logs and the operator's and pod runner's logs)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.operator.helpers import GROUP, VERSION

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "order_processing"
WORKFLOW_LABEL = "conveyor.dev/workflow"
STEP_LABEL = "conveyor.dev/step"
SHARD_LABEL = "conveyor.dev/shard"
ROLE_ANNOTATION = "conveyor.dev/role"
LOG_TAIL_LINES = 60


def cluster_mode() -> bool:
    """The cluster runs the operator and the pods (e2e/kind.sh); the suite starts neither."""
    return os.environ.get("CONVEYOR_E2E_CLUSTER", "").strip().lower() in ("1", "true", "yes")


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
            last = e  # an API server restarting is a reason to look again, not a failure
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f}s for {what}; last seen: {last!r}", pytrace=False)
        time.sleep(interval)


def pod_name(pod: client.V1Pod) -> str:
    """The name of a pod the API server returned (the client's model makes every field Optional)."""
    assert pod.metadata is not None and pod.metadata.name is not None, pod
    return pod.metadata.name


def pod_status(pod: client.V1Pod) -> client.V1PodStatus:
    """A pod's status, empty until the API server (or the pod runner) has written one."""
    return pod.status or client.V1PodStatus()


@dataclass
class Process:
    """A helper process of the suite (the operator, the pod runner) with its output in a log file."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, env=self.env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )

    def check_running(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{tail(self.log)}", pytrace=False)

    def stop(self, timeout: float) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except OSError as e:
        return f"({path}: {e})"


@dataclass
class Cluster:
    """The cluster under test: an API client, the test namespace, and where the pods' Postgres and Kafka are."""

    api: client.ApiClient
    namespace: str
    dsn: str  # as the worker pods reach it
    kafka: str  # as the worker pods reach it
    image: str
    artifacts: Path
    runs_pods: bool  # the pods are processes of this machine (pod runner mode)
    helpers: list[Process] = field(default_factory=list)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

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

    def custom_objects(self, plural: str) -> list[dict[str, Any]]:
        listed = cast(dict[str, Any], self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, plural))
        return cast(list[dict[str, Any]], listed["items"])

    def pods(self, selector: str) -> list[client.V1Pod]:
        return list(self.core.list_namespaced_pod(self.namespace, label_selector=selector).items)

    def leases(self) -> dict[str, client.V1Lease]:
        """The conveyor Leases of the namespace by role."""
        found: dict[str, client.V1Lease] = {}
        for lease in client.CoordinationV1Api(self.api).list_namespaced_lease(self.namespace).items:
            role = ((lease.metadata.annotations if lease.metadata else None) or {}).get(ROLE_ANNOTATION)
            if role:
                found[role] = lease
        return found

    # -- failure dumps -------------------------------------------------------------------------------------------

    def dump(self) -> str:
        """Everything that explains a failed e2e test, as text."""
        parts: list[str] = []

        def section(title: str, body: str) -> None:
            parts.append(f"===== {title}\n{body.rstrip()}\n")

        try:
            pods = self.core.list_namespaced_pod(self.namespace).items
            rows = []
            for pod in pods:
                # A dump shows whatever is there: no field of a pod is taken for granted.
                meta, status = pod.metadata or client.V1ObjectMeta(), pod.status or client.V1PodStatus()
                statuses = status.container_statuses or []
                ready = all(s.ready for s in statuses) and bool(statuses)
                restarts = sum(s.restart_count for s in statuses)
                deleting = " (deleting)" if meta.deletion_timestamp else ""
                rows.append(
                    f"{meta.name}\t{status.phase}{deleting}\tready={ready}\trestarts={restarts}\t"
                    f"node={pod.spec.node_name if pod.spec else None}"
                )
            section(f"pods in {self.namespace}", "\n".join(rows) or "(none)")
            for item in self.custom_objects("workflows"):
                section(f"Workflow {item['metadata']['name']} status", json.dumps(item.get("status"), indent=1))
            runs = self.custom_objects("workflowruns")
            section(
                "WorkflowRuns",
                "\n".join(f"{r['metadata']['name']}: {json.dumps(r.get('status'))}" for r in runs) or "(none)",
            )
            section(
                "Leases",
                "\n".join(
                    f"{role}: {lease.spec.holder_identity} renewed {lease.spec.renew_time}"
                    if lease.spec
                    else f"{role}: (no spec)"
                    for role, lease in sorted(self.leases().items())
                ),
            )
            events = self.core.list_namespaced_event(self.namespace).items[-40:]
            section(
                "events (last 40)",
                "\n".join(f"{e.involved_object.kind}/{e.involved_object.name} {e.reason}: {e.message}" for e in events),
            )
            if not self.runs_pods:
                for pod in pods:
                    if pod.metadata is None or pod.metadata.name is None:
                        continue
                    try:
                        log = self.core.read_namespaced_pod_log(
                            pod.metadata.name, self.namespace, tail_lines=LOG_TAIL_LINES
                        )
                    except ApiException as e:
                        log = f"({e.status} {e.reason})"
                    section(f"log of pod {pod.metadata.name}", log)
        except Exception as e:  # a dump must never hide the failure it explains
            section("dump failed", repr(e))
        if self.runs_pods:
            for path in sorted((self.artifacts / "pods").glob("*.log")):
                section(f"log {path.relative_to(ROOT)}", tail(path))
        for helper in self.helpers:
            section(f"log of {helper.name} ({helper.log.relative_to(ROOT)})", tail(helper.log))
        return "\n".join(parts)
