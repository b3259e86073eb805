"""Converge one Workflow: make its Deployments exactly the desired ones, then write its status.

Level-triggered and idempotent: it reads what exists, creates what is missing, server-side-applies only what
changed (the desired manifest's hash differs from the one on the Deployment), deletes the Deployments of shards
that are no longer wanted, and patches the status only when it changed. Anything wrong that only the operator can
see (two steps whose Deployment names collide, a Deployment name taken by something it does not own) is checked
before anything is touched: the Workflow is marked Degraded and nothing is created. A worker that exited because
its code does not match the manifest says so in its pod's termination message, which marks the Workflow Degraded
(CodeMismatch) with the worker's own words; workers that keep failing otherwise mark it Degraded
(WorkerCrashLooping) with the pods' names and last words.

Calls are blocking (the official client); kopf runs sync handlers on its thread pool. One lock per Workflow keeps
the reconciles triggered by the Workflow and by its Deployments' events from interleaving.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from conveyor.kubernetes import GROUP, VERSION, WORKFLOWS
from conveyor_operator._deployments import Desired, desired_deployments
from conveyor_operator._models import WorkflowSpec
from conveyor_operator._names import MANAGER, SPEC_HASH, selector
from conveyor_operator._status import Problem, worker_problems, workflow_status

# (type, reason, message): what the operator did, posted as a Kubernetes Event on the Workflow.
Report = Callable[[str, str, str], None]

_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(namespace: str, name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((namespace, name), threading.Lock())


def _name(deployment: Any) -> str:
    return str(deployment.metadata.name)


def _owned_by(deployment: Any, uid: str) -> bool:
    return any(ref.uid == uid and ref.controller for ref in deployment.metadata.owner_references or [])


def _plan(workflow: Mapping[str, Any]) -> tuple[WorkflowSpec | None, list[Desired], Problem | None]:
    try:
        spec = WorkflowSpec.model_validate(workflow["spec"])
    except ValidationError as e:
        # The CRD's schema refuses nearly everything first; this catches what it cannot state.
        return None, [], Problem("InvalidSpec", str(e).replace("\n", " "))
    desired = desired_deployments(workflow, spec)
    clashes = sorted(name for name, count in Counter(d.name for d in desired).items() if count > 1)
    if clashes:
        steps = sorted({d.step or "(system)" for d in desired if d.name in clashes})
        return (
            spec,
            [],
            Problem(
                "StepNamesCollide",
                f"steps {', '.join(steps)} would share the Deployment names {', '.join(clashes)}: rename one",
            ),
        )
    return spec, desired, None


def _taken(apps: client.AppsV1Api, namespace: str, names: list[str], uid: str) -> Problem | None:
    for name in names:
        try:
            found = apps.read_namespaced_deployment(name, namespace)
        except ApiException as e:
            if e.status == 404:
                continue
            raise
        if not _owned_by(found, uid):
            return Problem("NameConflict", f"Deployment {name} already exists and is not this Workflow's")
    return None


def _apply(apps: client.AppsV1Api, desired: Desired, current: Any = None) -> Any:
    strategy = desired.manifest["spec"]["strategy"]
    if current is not None and current.spec.strategy is not None and current.spec.strategy.type != strategy["type"]:
        # The API server defaulted `rollingUpdate` on a Deployment made before workers used Recreate; nobody owns
        # it, so an apply would keep it and be refused ("may not be specified when strategy type is Recreate").
        apps.patch_namespaced_deployment(
            desired.name,
            desired.manifest["metadata"]["namespace"],
            {"spec": {"strategy": {**strategy, "rollingUpdate": None}}},
            _content_type="application/merge-patch+json",
        )
    return apps.patch_namespaced_deployment(
        desired.name,
        desired.manifest["metadata"]["namespace"],
        desired.manifest,
        field_manager=MANAGER,
        force=True,
        _content_type="application/apply-patch+yaml",
    )


def _role(desired: Desired) -> str:
    if desired.step is None:
        return "system roles"
    return f"step {desired.step}, shard {desired.shard}"


def reconcile(api: client.ApiClient, workflow: Mapping[str, Any], report: Report) -> dict[str, Any]:
    """Converge `workflow` (as read from the API server); returns the status it now has."""
    metadata = workflow["metadata"]
    namespace, name, uid = metadata["namespace"], metadata["name"], metadata["uid"]
    apps = client.AppsV1Api(api)
    with _lock(namespace, name):
        spec, desired, problem = _plan(workflow)
        listed = apps.list_namespaced_deployment(namespace, label_selector=selector(name)).items
        owned: dict[str, Any] = {_name(d): d for d in listed if _owned_by(d, uid)}
        if problem is None:
            problem = _taken(apps, namespace, [d.name for d in desired if d.name not in owned], uid)
        if problem is not None:
            desired = []
            report("Warning", problem.reason, problem.message)
        else:
            wanted = {d.name for d in desired}
            for each in desired:
                current = owned.get(each.name)
                if current is not None and (current.metadata.annotations or {}).get(SPEC_HASH) == each.spec_hash:
                    continue
                owned[each.name] = _apply(apps, each, current)
                verb = "Created" if current is None else "Updated"
                report("Normal", verb, f"Deployment {each.name} ({_role(each)})")
            for surplus in sorted(set(owned) - wanted):
                try:
                    apps.delete_namespaced_deployment(surplus, namespace, propagation_policy="Background")
                except ApiException as e:
                    if e.status != 404:
                        raise
                del owned[surplus]
                report("Normal", "Deleted", f"Deployment {surplus} (no longer wanted)")
        shards = {step: options.parallel_count for step, options in (spec.steps.items() if spec else [])}
        deployments = [api.sanitize_for_serialization(d) for d in owned.values()]  # type: ignore[no-untyped-call]
        previous = workflow.get("status") or {}
        workers = _worker_problems(api, namespace, name, desired)
        status = workflow_status(metadata.get("generation", 0), shards, deployments, problem, previous, workers)
        if _differs(status, previous):
            client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, WORKFLOWS, name, {"status": status}
            )
        return status


def _worker_problems(api: client.ApiClient, namespace: str, name: str, desired: list[Desired]) -> list[Problem]:
    """What the Workflow's current workers' pods say (a CodeMismatch, a crash loop), read from their status."""
    if not desired:
        return []
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector(name)).items
    current: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for pod in pods:
        # Each pod against its own Deployment's container: workers differ (each gets its own step's options).
        labels = (pod.metadata.labels if pod.metadata is not None else None) or {}
        template = next(
            (
                each.manifest["spec"]["template"]["spec"]["containers"][0]
                for each in desired
                if all(labels.get(k) == v for k, v in each.manifest["spec"]["selector"]["matchLabels"].items())
            ),
            None,
        )
        if template is None:
            continue  # a pod of a Deployment that is no longer wanted
        current.append((api.sanitize_for_serialization(pod), template))  # type: ignore[no-untyped-call]
    return worker_problems(current)


def _differs(status: Mapping[str, Any], previous: Mapping[str, Any]) -> bool:
    return any(previous.get(key) != value for key, value in status.items())


def read_workflow(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    """The Workflow as stored, or None when it is gone or being deleted (its Deployments go with it)."""
    try:
        found = cast(
            dict[str, Any],
            client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, namespace, WORKFLOWS, name),
        )
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    if found["metadata"].get("deletionTimestamp"):
        return None
    return found
