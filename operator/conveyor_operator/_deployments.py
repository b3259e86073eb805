"""The Deployments a Workflow asks for, as plain manifests: one per shard of each step, running
`conveyor worker ENTRYPOINT --step STATUS --shard K`, and one running `conveyor worker ENTRYPOINT --system`.

Pure functions of the Workflow object, so they are tested without a cluster and the reconciler only compares and
applies. Each manifest carries a hash of itself, which is how the reconciler tells a changed Deployment from an
unchanged one without diffing what the API server defaulted.

What rolls when the Workflow changes: a pod template holds only what its worker reads, so editing one step's
options (its parallelCount included) rolls that step's shard Deployments and nothing else. Every worker checks
the code's step names against the manifest's, so each gets every step's name ($CONVEYOR_STEPS), but only its own
step's options; the system worker runs no step consumer and gets names only. replicasPerShard is the operator's
alone (the Deployment's replicas), so changing it scales without rolling.

Every worker Deployment uses the Recreate strategy: a worker is ready only while it holds its role's Lease, and a
shard of a new shard count also waits for the old count's shards to stop (the worker's shard fence). Under a
RollingUpdate (maxUnavailable 0 for one replica) the new pod could never become ready while the old one runs, so
the rollout would stall; Recreate stops the old pods first, and a role has one active holder anyway.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conveyor.kubernetes import API_VERSION, TERMINATION_LOG, WORKFLOW_KIND
from conveyor_operator._models import WorkflowSpec
from conveyor_operator._names import (
    COMPONENT,
    SHARD,
    SPEC_HASH,
    STEP,
    WORKFLOW,
    common_labels,
    shard_deployment_name,
    system_deployment_name,
)

PORT = 8080
USER_ID = 10001
# A worker's own needs, for a Workflow without spec.resources. CPU: a worker mostly waits on Postgres and Kafka, and
# a request is a share under contention, not a cap (there is no CPU limit); 100m each left a reshard's pods Pending
# on a 2-CPU node (the control plane requests ~850m), 25m fits ~40 beside it and the operator. Memory: the example's
# workers peak at 85-91 MiB RSS through a burst of 4,000 orders; the limit leaves room for a step's own objects.
DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "25m", "memory": "128Mi"},
    "limits": {"memory": "512Mi"},
}


@dataclass(frozen=True)
class Desired:
    """One Deployment the Workflow needs: its manifest, and the role it runs (step None: the system roles)."""

    name: str
    step: str | None
    shard: int | None
    manifest: dict[str, Any]

    @property
    def spec_hash(self) -> str:
        return str(self.manifest["metadata"]["annotations"][SPEC_HASH])


# Set by the Helm chart on the operator's pod: the ServiceAccount it creates for workers in every namespace.
WORKER_SERVICE_ACCOUNT_ENV = "CONVEYOR_WORKER_SERVICE_ACCOUNT"


# Step options a worker does not read: changing them must not roll its pods.
_OPERATOR_ONLY = ("replicasPerShard",)


def worker_steps(workflow: Mapping[str, Any], step: str | None) -> dict[str, dict[str, Any]]:
    """$CONVEYOR_STEPS for the worker of `step` (None: the system worker): every step's name, for the worker's
    check of the code; options (as the manifest has them, the API server's defaults filled in) for its own step
    only."""
    steps: Mapping[str, Any] = workflow["spec"]["steps"]
    return {
        name: (
            {key: value for key, value in (options or {}).items() if key not in _OPERATOR_ONLY} if name == step else {}
        )
        for name, options in steps.items()
    }


def _env(workflow: Mapping[str, Any], spec: WorkflowSpec, step: str | None) -> list[dict[str, Any]]:
    steps = worker_steps(workflow, step)
    env: list[dict[str, Any]] = [
        {"name": "CONVEYOR_STEPS", "value": json.dumps(steps, sort_keys=True, separators=(",", ":"))},
        {
            "name": "CONVEYOR_PG_DSN",
            "valueFrom": {"secretKeyRef": {"name": spec.store.secret_ref.name, "key": spec.store.secret_ref.key}},
        },
        {"name": "CONVEYOR_KAFKA", "value": spec.streamer.bootstrap_servers},
        {"name": "CONVEYOR_KAFKA_PARTITIONS", "value": str(spec.streamer.partitions)},
        {"name": "CONVEYOR_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "CONVEYOR_PORT", "value": str(PORT)},
        # The Workflow object the worker belongs to: the system worker publishes the graph into its status.
        {"name": "CONVEYOR_WORKFLOW", "value": workflow["metadata"]["name"]},
        # --wait-for-store: a pod started before its database is up or migrated waits, unready, and becomes ready
        # once it is, instead of crash-looping into a back-off of up to 5 minutes. Set in the environment, not as
        # an argument, so that a worker image of an earlier conveyor (which has no such flag) still starts.
        {"name": "CONVEYOR_WAIT_FOR_STORE", "value": "true"},
    ]
    config = spec.streamer.config_secret_ref
    if config is not None:
        secret = {"secretKeyRef": {"name": config.name, "key": config.key}}
        env.append({"name": "CONVEYOR_KAFKA_CONFIG", "valueFrom": secret})
    if spec.debug:
        env.append({"name": "CONVEYOR_DEBUG", "value": "true"})
    return env


def _resources(spec: WorkflowSpec) -> dict[str, Any]:
    if spec.resources is None:
        return DEFAULT_RESOURCES
    given = spec.resources.model_dump(exclude_none=True)
    return given or DEFAULT_RESOURCES


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _container(spec: WorkflowSpec, args: list[str], env: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "worker",
        "image": spec.image,
        "command": ["conveyor", "worker", spec.entrypoint, *args],
        "env": env,
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "livenessProbe": _probe("/healthz", period=10, failures=3),
        "readinessProbe": _probe("/readyz", period=5, failures=1),
        "resources": _resources(spec),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": USER_ID,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        # A worker that refuses to start (its code's steps differ from the manifest's) writes why to
        # /dev/termination-log; one that dies otherwise leaves its last log lines. The operator reads either from
        # the pod's status and shows it on the Workflow.
        "terminationMessagePath": TERMINATION_LOG.as_posix(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if spec.image_pull_policy is not None:
        container["imagePullPolicy"] = spec.image_pull_policy
    return container


def owner_reference(workflow: Mapping[str, Any]) -> dict[str, Any]:
    metadata = workflow["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": WORKFLOW_KIND,
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _deployment(
    workflow: Mapping[str, Any],
    spec: WorkflowSpec,
    name: str,
    role_labels: dict[str, str],
    replicas: int,
    args: list[str],
    step: str | None,
) -> dict[str, Any]:
    workflow_name = workflow["metadata"]["name"]
    labels = {**common_labels(workflow_name), **role_labels}
    # The selector is immutable: only the labels that tell this role's pods apart from every other pod's.
    match = {WORKFLOW: workflow_name, **role_labels}
    pod: dict[str, Any] = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": USER_ID,
            "runAsGroup": USER_ID,
            "fsGroup": USER_ID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(spec, args, _env(workflow, spec, step))],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    # The Workflow's own account, else the one the chart made for workers (Leases and little else) in each namespace.
    account = spec.service_account_name or os.environ.get(WORKER_SERVICE_ACCOUNT_ENV) or None
    if account is not None:
        pod["serviceAccountName"] = account
    manifest: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": workflow["metadata"]["namespace"],
            "labels": labels,
            "annotations": {},
            "ownerReferences": [owner_reference(workflow)],
        },
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 3,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": match},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
    manifest["metadata"]["annotations"][SPEC_HASH] = digest
    return manifest


def desired_deployments(workflow: Mapping[str, Any], spec: WorkflowSpec) -> list[Desired]:
    """Every Deployment `workflow` (the object as read from the API server, `spec` its parsed spec) needs."""
    name = workflow["metadata"]["name"]
    found: list[Desired] = []
    for step, options in spec.steps.items():
        for shard in range(1, options.parallel_count + 1):
            deployment = shard_deployment_name(name, step, shard)
            role = {COMPONENT: "step", STEP: step, SHARD: str(shard)}
            args = ["--step", step, "--shard", str(shard)]
            manifest = _deployment(workflow, spec, deployment, role, options.replicas_per_shard, args, step)
            found.append(Desired(deployment, step, shard, manifest))
    system = system_deployment_name(name)
    manifest = _deployment(workflow, spec, system, {COMPONENT: "system"}, 1, ["--system"], None)
    found.append(Desired(system, None, None, manifest))
    return found
