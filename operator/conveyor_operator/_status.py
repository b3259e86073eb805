"""A Workflow's status from its Deployments: per-step ready/desired shards and the Ready, Progressing and Degraded
conditions (meta/v1 Condition shape, each with a reason and the generation it speaks for).

A shard is ready when its Deployment has rolled out the current template with every replica ready. Pods that are
not ready yet (being pulled, scheduled, waiting for a node) are progress, not failure: only the Deployment
controller's own verdicts (ProgressDeadlineExceeded, ReplicaFailure) or a spec the operator cannot carry out make
a Workflow Degraded.
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
) -> dict[str, Any]:
    """The Workflow's new status. `deployments` are the shard Deployments it owns (labelled with their step),
    `problem` what keeps the operator from carrying out the spec, `previous` the status it had."""
    ready: dict[str, int] = dict.fromkeys(desired_shards, 0)
    problems = [problem] if problem is not None else []
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
