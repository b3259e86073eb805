"""Names and labels of the Deployments the operator owns.

A Deployment's pods are named `{deployment}-{10-char template hash}-{5 chars}`, and a pod's hostname is cut at 63
characters, so a Deployment name is kept to 47. A longer one is cut and given a hash of the exact
(workflow, role) it stands for, so two roles never share a name. The shard number is kept last and whole: it is
what a human looks for. Names carry the shard k but not the count n, so changing n leaves the surviving shards'
Deployments in place (patched, not recreated).
"""

from __future__ import annotations

import hashlib
import re

MAX_DEPLOYMENT_NAME = 47
MANAGER = "conveyor-operator"
_HASH_CHARS = 8

# Label keys; the values are the workflow's name, the step's status name and the shard number.
WORKFLOW = "conveyor.dev/workflow"
STEP = "conveyor.dev/step"
SHARD = "conveyor.dev/shard"
COMPONENT = "app.kubernetes.io/component"
MANAGED_BY = "app.kubernetes.io/managed-by"
SPEC_HASH = "conveyor.dev/spec-hash"


def _dns(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def _fit(base: str, suffix: str, exact: str) -> str:
    name = f"{_dns(base)}{suffix}"
    if len(name) <= MAX_DEPLOYMENT_NAME:
        return name
    digest = hashlib.sha256(exact.encode()).hexdigest()[:_HASH_CHARS]
    room = MAX_DEPLOYMENT_NAME - len(suffix) - _HASH_CHARS - 1
    return f"{_dns(base)[:room].rstrip('-')}-{digest}{suffix}"


def shard_deployment_name(workflow: str, step: str, shard: int) -> str:
    """The Deployment of shard `shard` (from 1) of `step`."""
    return _fit(f"{workflow}-{step}", f"-{shard}", f"{workflow}\0{step}")


def system_deployment_name(workflow: str) -> str:
    """The Deployment of the workflow's system roles (outbox relay, timeouts, connectors, data deletion)."""
    return _fit(f"{workflow}-system", "", f"{workflow}\0")


def common_labels(workflow: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "conveyor-worker",
        "app.kubernetes.io/instance": workflow,
        "app.kubernetes.io/part-of": "conveyor",
        MANAGED_BY: MANAGER,
        WORKFLOW: workflow,
    }


def selector(workflow: str) -> str:
    """Label selector of every Deployment the operator made for `workflow`."""
    return f"{WORKFLOW}={workflow},{MANAGED_BY}={MANAGER}"
