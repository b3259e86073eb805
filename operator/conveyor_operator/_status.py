"""A Workflow's status from its Deployments and its workers' pods: per-step ready/desired shards and the Ready,
Progressing and Degraded conditions (meta/v1 Condition shape, each with a reason and the generation it speaks for).

A shard is ready when its Deployment has rolled out the current template with every replica ready. Pods that are
not ready yet (being pulled, scheduled, waiting for a node) are progress, not failure: only the Deployment
controller's own verdicts (ProgressDeadlineExceeded, ReplicaFailure), a spec the operator cannot carry out, or
what a current worker's container status says make a Workflow Degraded: a worker that exited saying its code does
not match the manifest (CodeMismatch, from its termination message), or one that keeps failing (WorkerCrashLooping:
in CrashLoopBackOff, or not ready since its last run ended with an error), with its last words. CodeMismatch comes
first: it names the fix, and its pods crash-loop too.

Stranded runs (the system worker's status.strandedRuns: active runs at statuses its code cannot move) make the
Workflow Degraded with reason StrandedRuns and the counts in the message, but neither unready nor stalled: its
workers run and new runs go through. Beside another problem they are added to Degraded's message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from conveyor.kubernetes import (
    CODE_MISMATCH,
    STRANDED_RUNS,
    condition,
    conditions_by_type,
    stranded_entries,
    stranded_message,
)


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
    for each in (deployment.get("status") or {}).get("conditions") or []:
        if each.get("type") == "Progressing" and each.get("reason") == "ProgressDeadlineExceeded":
            return Problem("RolloutStuck", f"Deployment {name}: {each.get('message', '')}".strip())
        if each.get("type") == "ReplicaFailure" and each.get("status") == "True":
            return Problem("ReplicaFailure", f"Deployment {name}: {each.get('message', '')}".strip())
    return None


# CODE_MISMATCH (conveyor.kubernetes): what a worker that finds its code and the manifest's steps differ puts
# before its message in the termination log (the worker writes it; the kubelet copies it into the pod's status).
# A worker that keeps exiting with an error (Kafka unreachable, a crash at start-up, an OOM kill, a database it was
# not told to wait for): the kubelet restarts it with a back-off growing to 5 minutes, and nothing else says why.
CRASH_LOOPING = "WorkerCrashLooping"
# The most of a pod's last words shown on the Workflow: its termination message is up to 4 KiB of log tail (the
# Deployment's FallbackToLogsOnError), and the condition holds one such excerpt per distinct failure.
LAST_WORDS_LIMIT = 300
# Pods named in one WorkerCrashLooping message; the rest are counted ("and 6 more").
PODS_NAMED = 3


def _last_words(terminated: Mapping[str, Any]) -> str:
    """A terminated state's message, trimmed to its last non-empty line (the CLI's `Error: ...` or a traceback's
    exception) and LAST_WORDS_LIMIT characters."""
    lines = [line.strip() for line in str(terminated.get("message") or "").splitlines() if line.strip()]
    words = lines[-1] if lines else ""
    return words if len(words) <= LAST_WORDS_LIMIT else words[: LAST_WORDS_LIMIT - 1] + "\u2026"


def container_said(status: Mapping[str, Any]) -> tuple[str, str] | None:
    """What one container status (of pod.status.containerStatuses) says against its Workflow, as (reason, text):
    CodeMismatch with the worker's own message, or WorkerCrashLooping with how its last run ended ("exited 1:
    Error: PostgreSQL at ... is unavailable: ..."). None for a ready container (whatever it said before: an image
    re-pushed under the same tag may have fixed it), a running one that never failed, or one that only stopped
    cleanly (exit 0: a rollout or a scale-down)."""
    if status.get("ready"):
        return None
    state, last = status.get("state") or {}, status.get("lastState") or {}
    ended = [each["terminated"] for each in (state, last) if each.get("terminated")]
    for terminated in ended:
        message = str(terminated.get("message") or "").strip()
        if message.startswith(f"{CODE_MISMATCH}: "):
            return CODE_MISMATCH, message.removeprefix(f"{CODE_MISMATCH}: ").strip()
    failed = next((t for t in ended if t.get("exitCode", 0) != 0), None)
    waiting = state.get("waiting") or {}
    # A failed last run counts while the restarted container is not ready yet, so the condition holds steady
    # through the loop's back-off, run and exit instead of flapping with each.
    if failed is None and waiting.get("reason") != "CrashLoopBackOff":
        return None
    if failed is None:
        message = str(waiting.get("message") or "").strip()
        return CRASH_LOOPING, "is in CrashLoopBackOff" + (f": {message}" if message else "")
    reason = str(failed.get("reason") or "")
    text = f"exited {failed.get('exitCode')}" + (f" ({reason})" if reason and reason != "Error" else "")
    words = _last_words(failed)
    return CRASH_LOOPING, f"{text}: {words}" if words else text


def _env_value(container: Mapping[str, Any], name: str) -> object:
    return next((e.get("value") for e in container.get("env") or [] if e.get("name") == name), None)


def _pod_said(pod: Mapping[str, Any], template: Mapping[str, Any]) -> tuple[str, str] | None:
    containers = (pod.get("spec") or {}).get("containers") or []
    worker = next((c for c in containers if c.get("name") == template.get("name")), None)
    if worker is None or worker.get("image") != template.get("image"):
        return None
    if _env_value(worker, "CONVEYOR_STEPS") != _env_value(template, "CONVEYOR_STEPS"):
        return None
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == template.get("name"):
            return container_said(status)
    return None


def _pod_name(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name") or "?")


def pod_problem(pod: Mapping[str, Any], template: Mapping[str, Any]) -> Problem | None:
    """What the pod's worker (running what `template`, the desired worker container, asks: same image and steps)
    says against its Workflow (see `container_said`); a crash loop names the pod. A pod of an older template says
    nothing: its problem went with the spec that made it."""
    said = _pod_said(pod, template)
    if said is None:
        return None
    reason, text = said
    return Problem(reason, text if reason == CODE_MISMATCH else f"pod {_pod_name(pod)} {text}")


def worker_problems(pods: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> list[Problem]:
    """`pod_problem` of each (pod, its Deployment's desired container), the same words once: the pods that say the
    same thing are named in one message ("pods a, b, c and 6 more exited 1: ..."), so nine workers failing on one
    unreachable database make one line. CodeMismatch first."""
    by_words: dict[tuple[str, str], list[str]] = {}
    for pod, template in pods:
        said = _pod_said(pod, template)
        if said is not None:
            by_words.setdefault(said, []).append(_pod_name(pod))
    found: list[Problem] = []
    for (reason, text), names in sorted(by_words.items(), key=lambda item: item[0][0] != CODE_MISMATCH):
        if reason == CODE_MISMATCH:
            found.append(Problem(reason, text))
            continue
        names = sorted(names)
        named = ", ".join(names[:PODS_NAMED])
        if len(names) > PODS_NAMED:
            named += f" and {len(names) - PODS_NAMED} more"
        found.append(Problem(reason, f"{'pods' if len(names) > 1 else 'pod'} {named} {text}"))
    return found


def stranded_problem(status: Mapping[str, Any]) -> Problem | None:
    """What a Workflow's status.strandedRuns (written by its system worker) says, if it holds any runs."""
    message = stranded_message(stranded_entries(status))
    return Problem(STRANDED_RUNS, message) if message is not None else None


def workflow_status(
    generation: int,
    desired_shards: Mapping[str, int],
    deployments: Iterable[Mapping[str, Any]],
    problem: Problem | None,
    previous: Mapping[str, Any],
    workers: Iterable[Problem] = (),
) -> dict[str, Any]:
    """The Workflow's new status. `deployments` are the shard Deployments it owns (labelled with their step),
    `problem` what keeps the operator from carrying out the spec, `previous` the status it had (its strandedRuns
    are the system worker's: `stranded_problem`), `workers` what its current workers' pods say
    (`worker_problems`)."""
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
    before = conditions_by_type(previous.get("conditions"))
    stranded = stranded_problem(previous)

    def current(type_: str, status: bool, reason: str, message: str) -> dict[str, Any]:
        return condition(type_, status, reason, message, previous=before, generation=generation)

    if problems:
        first = problems[0]
        messages = [p.message for p in [*problems, *([stranded] if stranded else [])]]
        conditions = [
            current("Ready", False, first.reason, first.message),
            current("Progressing", False, first.reason, first.message),
            current("Degraded", True, first.reason, "; ".join(messages)),
        ]
    else:
        if total_ready >= total:
            message = f"all {total} shards ready"
            conditions = [
                current("Ready", True, "AllShardsReady", message),
                current("Progressing", False, "RolledOut", message),
            ]
        else:
            message = f"{total_ready}/{total} shards ready"
            conditions = [
                current("Ready", False, "ShardsNotReady", message),
                current("Progressing", True, "WaitingForShards", message),
            ]
        if stranded is not None:
            conditions.append(current("Degraded", True, stranded.reason, stranded.message))
        else:
            conditions.append(current("Degraded", False, "AsExpected", ""))
    return {
        "observedGeneration": generation,
        "conditions": conditions,
        "steps": [
            {"name": step, "desiredShards": want, "readyShards": min(ready[step], want)}
            for step, want in desired_shards.items()
        ],
        "shards": f"{total_ready}/{total}",
    }
