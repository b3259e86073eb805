"""A worker whose code does not match the manifest shows on its Workflow: the worker writes why to its termination
log (tests/cli/test_worker.py), the kubelet copies that into the pod's status (done here by hand, as there is no
kubelet), and the operator marks the Workflow Degraded with reason CodeMismatch and the worker's own message, until
the Workflow changes so that its current workers no longer say it. A worker that keeps failing otherwise marks it
Degraded too (WorkerCrashLooping, naming the pod and its last log line) until it is ready. Against the real API
server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from kubernetes import client

from conveyor_operator._deployments import desired_deployments
from conveyor_operator._models import WorkflowSpec
from conveyor_operator._status import Problem, pod_problem
from tests.helpers import GROUP, VERSION, eventually, workflow

MESSAGE = (
    "the manifest's steps do not match the code of workflow 'mismatch': only in the manifest: SHIPPED (no step in "
    "the code); only in the code: PAID"
)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exited(pod: client.V1Pod, message: str, *, restarted: bool = True, code: int = 2) -> dict[str, Any]:
    """The status a kubelet writes for a worker that exited `code` with `message` in its termination log."""
    assert pod.spec is not None, pod
    container = pod.spec.containers[0]
    terminated = {"exitCode": code, "reason": "Error", "message": message, "startedAt": _now(), "finishedAt": _now()}
    status: dict[str, Any] = {
        "name": container.name,
        "image": container.image,
        "imageID": "",
        "ready": False,
        "restartCount": 1 if restarted else 0,
    }
    if restarted:
        status["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting"}}
        status["lastState"] = {"terminated": terminated}
    else:
        status["state"] = {"terminated": terminated}
    return {"status": {"phase": "Running", "containerStatuses": [status]}}


def workflow_object(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    # The client types a custom object as `object`; the API server answers with the object's JSON.
    return cast(dict[str, Any], custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "workflows", name))


def degraded(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any] | None:
    found = workflow_object(custom, namespace, name)
    for condition in (found.get("status") or {}).get("conditions") or []:
        if condition["type"] == "Degraded" and condition["status"] == "True":
            return found
    return None


def test_a_workers_code_mismatch_marks_the_workflow_degraded_until_the_manifest_changes(
    api: client.ApiClient, namespace: str, operator: None
) -> None:
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    name = "mismatch"
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "workflows", workflow(name, {"CREATED": {}, "SHIPPED": {}})
    )
    selector = f"conveyor.dev/workflow={name},app.kubernetes.io/component=system"
    pods = eventually(lambda: core.list_namespaced_pod(namespace, label_selector=selector).items)
    pod = pods[0]
    # The Deployment asks Kubernetes to keep the worker's termination message (or its last log lines).
    container = pod.spec.containers[0]
    assert container.termination_message_policy == "FallbackToLogsOnError"
    assert container.termination_message_path == "/dev/termination-log"
    assert {e.name: e.value for e in container.env}["CONVEYOR_WORKFLOW"] == name

    core.patch_namespaced_pod_status(pod.metadata.name, namespace, exited(pod, f"CodeMismatch: {MESSAGE}"))
    found = eventually(lambda: degraded(custom, namespace, name))
    conditions = {c["type"]: c for c in found["status"]["conditions"]}
    assert conditions["Degraded"]["reason"] == "CodeMismatch"
    assert conditions["Degraded"]["message"] == MESSAGE
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "CodeMismatch"

    # The manifest is fixed: the new workers run other steps, and the old pod's words no longer count.
    custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "workflows",
        name,
        {"spec": {"steps": {"SHIPPED": None, "PAID": {}}}},
        _content_type="application/merge-patch+json",
    )

    def recovered() -> dict[str, Any] | None:
        found = workflow_object(custom, namespace, name)
        status = found.get("status") or {}
        if status.get("observedGeneration") != 2:
            return None
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        return found if conditions["Degraded"]["status"] == "False" else None

    eventually(recovered)


def conditions_of(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    status = workflow_object(custom, namespace, name).get("status") or {}
    return {c["type"]: c for c in status.get("conditions") or []}


def test_crash_looping_workers_mark_the_workflow_degraded_until_they_are_ready(
    api: client.ApiClient, namespace: str, operator: None
) -> None:
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    name = "crashing"
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "workflows", workflow(name, {"CREATED": {}}))
    selector = f"conveyor.dev/workflow={name},app.kubernetes.io/component=step"
    pod = eventually(lambda: core.list_namespaced_pod(namespace, label_selector=selector).items)[0]
    eventually(lambda: conditions_of(custom, namespace, name).get("Degraded", {}).get("reason") == "AsExpected")

    # The kubelet's fallback to the log's last lines (FallbackToLogsOnError): the CLI's error comes last.
    error = "Error: PostgreSQL at postgres:5432/conveyor is unavailable: failed to resolve host 'postgres'"
    tail = f"2026-12-03 07:40:32,101 INFO conveyor.worker: opening adapters\n{error}\n"
    core.patch_namespaced_pod_status(pod.metadata.name, namespace, exited(pod, tail, code=1))
    found = eventually(lambda: degraded(custom, namespace, name))
    conditions = {c["type"]: c for c in found["status"]["conditions"]}
    assert conditions["Degraded"]["reason"] == "WorkerCrashLooping"
    assert conditions["Degraded"]["message"] == f"pod {pod.metadata.name} exited 1: {error}"
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == ("False", "WorkerCrashLooping")

    # The database is back: the restarted worker runs and is ready, and the Workflow no longer says it.
    ready = exited(pod, tail, code=1)
    (container,) = ready["status"]["containerStatuses"]
    container.update(ready=True, started=True, state={"running": {"startedAt": _now()}, "waiting": None})
    ready["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    core.patch_namespaced_pod_status(pod.metadata.name, namespace, ready)
    eventually(lambda: conditions_of(custom, namespace, name)["Degraded"]["status"] == "False")


def test_only_a_current_workers_code_mismatch_counts() -> None:
    manifest = workflow("w", {"CREATED": {}})
    manifest["metadata"].update(namespace="ns", uid="u-1")
    desired = desired_deployments(manifest, WorkflowSpec.model_validate(manifest["spec"]))
    template = desired[0].manifest["spec"]["template"]["spec"]["containers"][0]
    terminated = {"terminated": {"exitCode": 2, "message": f"CodeMismatch: {MESSAGE}\n"}}

    def pod(container: dict[str, Any], **state: Any) -> dict[str, Any]:
        return {
            "spec": {"containers": [container]},
            "status": {"containerStatuses": [{"name": container["name"], **state}]},
        }

    assert pod_problem(pod(template, lastState=terminated), template) == Problem("CodeMismatch", MESSAGE)
    assert pod_problem(pod(template, state=terminated), template) == Problem("CodeMismatch", MESSAGE)
    # A worker that is ready now (the image was fixed under the same tag) no longer says it, whatever it said before.
    assert pod_problem(pod(template, lastState=terminated, ready=True, state={"running": {}}), template) is None
    # Another crash is not a mismatch: it is a crash loop (tests/operator/test_status.py).
    other = {"terminated": {"exitCode": 1, "message": "Traceback (most recent call last): ..."}}
    assert pod_problem(pod(template, lastState=other), template) == Problem(
        "WorkerCrashLooping", "pod ? exited 1: Traceback (most recent call last): ..."
    )
    assert pod_problem(pod(template, state={"running": {}}), template) is None
    # A pod of an older image, or of other steps, spoke for a spec that is gone.
    assert pod_problem(pod({**template, "image": "example.com/orders:1.3"}, lastState=terminated), template) is None
    old_steps = [e if e["name"] != "CONVEYOR_STEPS" else {**e, "value": "{}"} for e in template["env"]]
    assert pod_problem(pod({**template, "env": old_steps}, lastState=terminated), template) is None


def test_only_the_workers_pods_are_watched() -> None:
    """The pod watch is filtered by the API server, so the operator never streams a cluster's other pods."""
    import kopf
    from kopf._cogs.structs.references import Resource

    from conveyor_operator._handlers import configure

    settings = kopf.OperatorSettings()
    configure(settings)
    pods = Resource(group="", version="v1", plural="pods", kind="Pod", namespaced=True)
    deployments = Resource(group="apps", version="v1", plural="deployments", kind="Deployment", namespaced=True)
    selectors = settings.watching.label_selectors
    assert list(selectors.collect(pods)) == ["app.kubernetes.io/managed-by=conveyor-operator,conveyor.dev/workflow"]
    assert list(selectors.collect(deployments)) == []
