"""A Workflow's status from its Deployments: per-step ready/desired shards and the Ready, Progressing and Degraded
conditions (meta/v1 Condition shape, each with a reason and the generation it speaks for).

A shard is ready when its Deployment has rolled out the current template with every replica ready. Pods that are
not ready yet (being pulled, scheduled, waiting for a node) are progress, not failure: only the Deployment
controller's own verdicts (ProgressDeadlineExceeded, ReplicaFailure), a spec the operator cannot carry out, or a
worker that exited saying its code does not match the manifest (CodeMismatch, from the pod's termination message)
make a Workflow Degraded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Problem:
    """Why the operator cannot (fully) carry out a Workflow: a CamelCase reason and a message for humans."""

    reason: str
    message: str


def shard_ready(deployment: Mapping[str, Any]) -> bool:
    """The Deployment runs its current template with every replica ready (kubectl rollout status's test)."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    replicas = spec.get("replicas", 1)
    return bool(
        status.get("observedGeneration", 0) >= generation
        and status.get("updatedReplicas", 0) >= replicas
        and status.get("readyReplicas", 0) >= replicas
        and status.get("replicas", 0) <= replicas
    )


def deployment_problem(deployment: Mapping[str, Any]) -> Problem | None:
    """The Deployment controller's verdict that a rollout is stuck or cannot create its pods."""
    name = deployment["metadata"]["name"]
    for condition in (deployment.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return Problem("RolloutStuck", f"Deployment {name}: {condition.get('message', '')}".strip())
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            return Problem("ReplicaFailure", f"Deployment {name}: {condition.get('message', '')}".strip())
    return None


# What a worker that finds its code and the manifest's steps differ puts before its message in the termination
# log (conveyor.cli._worker writes it; the kubelet copies it into the pod's status).
CODE_MISMATCH = "CodeMismatch"


def _env_value(container: Mapping[str, Any], name: str) -> object:
    return next((e.get("value") for e in container.get("env") or [] if e.get("name") == name), None)


def pod_problem(pod: Mapping[str, Any], template: Mapping[str, Any]) -> Problem | None:
    """CodeMismatch when the pod's worker (running what `template`, the desired worker container, asks: same
    image and steps) exited saying its code does not match the manifest. A pod of an older template says nothing:
    its problem went with the spec that made it."""
    containers = (pod.get("spec") or {}).get("containers") or []
    worker = next((c for c in containers if c.get("name") == template.get("name")), None)
    if worker is None or worker.get("image") != template.get("image"):
        return None
    if _env_value(worker, "CONVEYOR_STEPS") != _env_value(template, "CONVEYOR_STEPS"):
        return None
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != template.get("name") or status.get("ready"):
            continue  # a ready worker matched its code after all (an image re-pushed under the same tag)
        for state in (status.get("state") or {}, status.get("lastState") or {}):
            message = str((state.get("terminated") or {}).get("message") or "").strip()
            if message.startswith(f"{CODE_MISMATCH}: "):
                return Problem(CODE_MISMATCH, message.removeprefix(f"{CODE_MISMATCH}: ").strip())
    return None


def _condition(
    type_: str, status: bool, reason: str, message: str, generation: int, previous: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    value = "True" if status else "False"
    before = previous.get(type_)
    # lastTransitionTime moves only when the status flips, as meta/v1 Condition defines it.
    if before is not None and before.get("status") == value and before.get("lastTransitionTime"):
        when = before["lastTransitionTime"]
    else:
        when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": when,
        "observedGeneration": generation,
    }


def workflow_status(
    generation: int,
    desired_shards: Mapping[str, int],
    deployments: Iterable[Mapping[str, Any]],
    problem: Problem | None,
    previous: Mapping[str, Any],
    workers: Iterable[Problem] = (),
) -> dict[str, Any]:
    """The Workflow's new status. `deployments` are the shard Deployments it owns (labelled with their step),
    `problem` what keeps the operator from carrying out the spec, `previous` the status it had, `workers` what
    its workers' pods said when they exited (the same message once)."""
    ready: dict[str, int] = dict.fromkeys(desired_shards, 0)
    problems = [problem] if problem is not None else []
    for said in workers:
        if said not in problems:
            problems.append(said)
    for deployment in deployments:
        step = deployment["metadata"]["labels"].get("conveyor.dev/step")
        if step in ready and shard_ready(deployment):
            ready[step] += 1
        stuck = deployment_problem(deployment)
        if stuck is not None:
            problems.append(stuck)
    total_ready = sum(min(ready[step], want) for step, want in desired_shards.items())
    total = sum(desired_shards.values())
    before = {c["type"]: c for c in previous.get("conditions") or [] if "type" in c}

    if problems:
        first = problems[0]
        conditions = [
            _condition("Ready", False, first.reason, first.message, generation, before),
            _condition("Progressing", False, first.reason, first.message, generation, before),
            _condition("Degraded", True, first.reason, "; ".join(p.message for p in problems), generation, before),
        ]
    elif total_ready >= total:
        message = f"all {total} shards ready"
        conditions = [
            _condition("Ready", True, "AllShardsReady", message, generation, before),
            _condition("Progressing", False, "RolledOut", message, generation, before),
            _condition("Degraded", False, "AsExpected", "", generation, before),
        ]
    else:
        message = f"{total_ready}/{total} shards ready"
        conditions = [
            _condition("Ready", False, "ShardsNotReady", message, generation, before),
            _condition("Progressing", True, "WaitingForShards", message, generation, before),
            _condition("Degraded", False, "AsExpected", "", generation, before),
        ]
    return {
        "observedGeneration": generation,
        "conditions": conditions,
        "steps": [
            {"name": step, "desiredShards": want, "readyShards": min(ready[step], want)}
            for step, want in desired_shards.items()
        ],
        "shards": f"{total_ready}/{total}",
    }
