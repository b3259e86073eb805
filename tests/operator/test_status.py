"""A Workflow's status from its workers' pods, without a cluster: a worker that keeps failing (in CrashLoopBackOff,
or not ready since a run that ended with an error) makes the Workflow Degraded, WorkerCrashLooping, naming the pods
and their last words; a ready, starting or cleanly stopped worker does not; CodeMismatch comes first. Stranded
runs (its system worker's status.strandedRuns) make it Degraded, StrandedRuns, without making it unready."""

from __future__ import annotations

from typing import Any

from conveyor_operator._deployments import desired_deployments
from conveyor_operator._models import WorkflowSpec
from conveyor_operator._status import (
    CRASH_LOOPING,
    LAST_WORDS_LIMIT,
    Problem,
    container_said,
    pod_problem,
    worker_problems,
    workflow_status,
)
from tests.helpers import workflow

# What a worker that cannot reach its database leaves as its termination message: the kubelet's fallback to the
# last lines of its log (FallbackToLogsOnError), the CLI's one-line error last.
UNREACHABLE = "Error: PostgreSQL at postgres:5432/conveyor is unavailable: failed to resolve host 'postgres'"
LOG_TAIL = f"2026-12-03 07:40:32,101 INFO conveyor.worker: starting\n{UNREACHABLE}\n"
MISMATCH = "the manifest's steps do not match the code of workflow 'w': only in the code: PAID"


def _template() -> dict[str, Any]:
    manifest = workflow("w", {"CREATED": {}})
    manifest["metadata"].update(namespace="ns", uid="u-1")
    desired = desired_deployments(manifest, WorkflowSpec.model_validate(manifest["spec"]))
    container: dict[str, Any] = desired[0].manifest["spec"]["template"]["spec"]["containers"][0]
    return container


TEMPLATE = _template()


def failed(code: int = 1, message: str = LOG_TAIL, reason: str = "Error") -> dict[str, Any]:
    return {"terminated": {"exitCode": code, "reason": reason, "message": message}}


BACK_OFF = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}}


def pod(name: str = "w-created-1-7d9f-abcde", **status: Any) -> dict[str, Any]:
    """A pod of TEMPLATE's Deployment whose worker container has `status` (state, lastState, ready, ...)."""
    return {
        "metadata": {"name": name},
        "spec": {"containers": [TEMPLATE]},
        "status": {"containerStatuses": [{"name": TEMPLATE["name"], "ready": False, **status}]},
    }


def test_a_worker_in_crash_loop_back_off_names_the_pod_and_its_last_words() -> None:
    said = pod_problem(pod(state=BACK_OFF, lastState=failed(), restartCount=3), TEMPLATE)
    assert said == Problem(CRASH_LOOPING, f"pod w-created-1-7d9f-abcde exited 1: {UNREACHABLE}")


def test_the_crash_loop_holds_through_the_restarted_run_and_the_exit_before_it() -> None:
    # Between two back-offs the container runs (not ready) and then exits: the Workflow's condition stays put.
    running = pod_problem(pod(state={"running": {}}, lastState=failed(), restartCount=3), TEMPLATE)
    exiting = pod_problem(pod(state=failed(), restartCount=0), TEMPLATE)
    expected = Problem(CRASH_LOOPING, f"pod w-created-1-7d9f-abcde exited 1: {UNREACHABLE}")
    assert running == exiting == expected


def test_how_a_worker_exits_without_words_and_long_words_are_said() -> None:
    killed = pod_problem(pod(state=BACK_OFF, lastState=failed(137, "", "OOMKilled")), TEMPLATE)
    assert killed == Problem(CRASH_LOOPING, "pod w-created-1-7d9f-abcde exited 137 (OOMKilled)")
    assert container_said({"state": BACK_OFF}) == (
        CRASH_LOOPING,
        "is in CrashLoopBackOff: back-off 40s restarting failed container",
    )
    traceback = "Traceback (most recent call last):\n  File ...\nRuntimeError: " + "x" * 2000
    said = container_said({"state": BACK_OFF, "lastState": failed(message=traceback)})
    assert said is not None
    words = said[1].removeprefix("exited 1: ")
    assert words.startswith("RuntimeError: xxx") and words.endswith("\u2026")
    assert len(words) == LAST_WORDS_LIMIT


def test_ready_starting_and_cleanly_stopped_workers_say_nothing() -> None:
    # Ready again after a crash (the database came back): what it said before no longer counts.
    assert pod_problem(pod(ready=True, state={"running": {}}, lastState=failed()), TEMPLATE) is None
    assert pod_problem(pod(state={"running": {}}), TEMPLATE) is None
    assert pod_problem(pod(state={"waiting": {"reason": "ContainerCreating"}}), TEMPLATE) is None
    assert pod_problem(pod(state={"waiting": {"reason": "ImagePullBackOff"}}), TEMPLATE) is None
    # Exit 0 is a worker stopped by SIGTERM (a rollout, a scale-down), not a failure.
    assert pod_problem(pod(state=failed(0, "")), TEMPLATE) is None
    assert pod_problem(pod(state={"running": {}}, lastState=failed(0, "")), TEMPLATE) is None
    # A pod of another image spoke for a spec that is gone.
    other = pod(state=BACK_OFF, lastState=failed())
    other["spec"]["containers"] = [{**TEMPLATE, "image": "example.com/orders:1.3"}]
    assert pod_problem(other, TEMPLATE) is None


def test_a_code_mismatch_comes_before_a_crash_loop() -> None:
    mismatched = failed(2, f"CodeMismatch: {MISMATCH}")
    # The mismatched worker crash-loops too, but says why: its own words, not a crash loop.
    assert pod_problem(pod(state=BACK_OFF, lastState=mismatched), TEMPLATE) == Problem("CodeMismatch", MISMATCH)
    pods = [
        (pod("w-created-1-a", state=BACK_OFF, lastState=failed()), TEMPLATE),
        (pod("w-created-1-b", state=BACK_OFF, lastState=mismatched), TEMPLATE),
    ]
    problems = worker_problems(pods)
    assert problems == [
        Problem("CodeMismatch", MISMATCH),
        Problem(CRASH_LOOPING, f"pod w-created-1-a exited 1: {UNREACHABLE}"),
    ]
    status = workflow_status(1, {"CREATED": 1}, [], None, {}, problems)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Degraded"]["status"] == "True"
    assert conditions["Degraded"]["reason"] == "CodeMismatch"
    assert conditions["Degraded"]["message"] == f"{MISMATCH}; pod w-created-1-a exited 1: {UNREACHABLE}"


def test_workers_failing_alike_make_one_message_and_the_workflow_degraded() -> None:
    # The probe's case: every worker of the example (9 pods) fails on the same unreachable database.
    names = [f"order-processing-{i}-5d8f-x" for i in range(9)]
    pods = [(pod(name, state=BACK_OFF, lastState=failed()), TEMPLATE) for name in reversed(names)]
    pods.append((pod("order-processing-oom", state=BACK_OFF, lastState=failed(137, "", "OOMKilled")), TEMPLATE))
    pods.append((pod("order-processing-fine", ready=True, state={"running": {}}), TEMPLATE))
    problems = worker_problems(pods)
    assert problems == [
        Problem(
            CRASH_LOOPING,
            f"pods {', '.join(names[:3])} and 6 more exited 1: {UNREACHABLE}",
        ),
        Problem(CRASH_LOOPING, "pod order-processing-oom exited 137 (OOMKilled)"),
    ]
    status = workflow_status(3, {"CREATED": 2, "PAID": 1}, [], None, {}, problems)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert {t: (c["status"], c["reason"]) for t, c in conditions.items()} == {
        "Ready": ("False", CRASH_LOOPING),
        "Progressing": ("False", CRASH_LOOPING),
        "Degraded": ("True", CRASH_LOOPING),
    }
    assert conditions["Degraded"]["message"] == "; ".join(p.message for p in problems)
    assert status["shards"] == "0/3"
    # No worker says anything: as before, shards that are not ready yet are progress.
    calm = workflow_status(3, {"CREATED": 2, "PAID": 1}, [], None, status, worker_problems(pods[-1:]))
    degraded = next(c for c in calm["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("False", "AsExpected")


# What a system worker publishes for runs its code cannot move: 3 at a status it knows, 1 at a number it does not.
STRANDED = [
    {"status": "PAID", "value": 2, "count": 3, "since": "2026-12-03T07:00:00Z"},
    {"status": "7", "value": 7, "count": 1, "since": "2026-12-01T10:00:00Z"},
]
STRANDED_MESSAGE = (
    "4 active runs at statuses that no step, callback or timeout of the running code moves: 3 at PAID (2) since "
    "2026-12-03T07:00:00Z, 1 at 7 since 2026-12-01T10:00:00Z; put the step back until they drain, or move them "
    "(conveyor runs fork)"
)


def ready_deployment(step: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"w-{step.lower()}-1", "generation": 1, "labels": {"conveyor.dev/step": step}},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 1, "updatedReplicas": 1, "readyReplicas": 1, "replicas": 1},
    }


def test_stranded_runs_make_the_workflow_degraded_but_leave_it_ready() -> None:
    previous = {"strandedRuns": STRANDED, "graph": "stateDiagram-v2"}
    status = workflow_status(2, {"CREATED": 1}, [ready_deployment("CREATED")], None, previous)
    conditions = {c["type"]: (c["status"], c["reason"], c["message"]) for c in status["conditions"]}
    assert conditions == {
        "Ready": ("True", "AllShardsReady", "all 1 shards ready"),
        "Progressing": ("False", "RolledOut", "all 1 shards ready"),
        "Degraded": ("True", "StrandedRuns", STRANDED_MESSAGE),
    }
    # The field is the worker's: the operator's status leaves it (and the graph) alone.
    assert "strandedRuns" not in status and "graph" not in status
    # Shards still rolling out: progress as ever, the stranded runs beside it.
    rolling = workflow_status(2, {"CREATED": 1}, [], None, previous)
    rolling_conditions = {c["type"]: (c["status"], c["reason"]) for c in rolling["conditions"]}
    assert rolling_conditions == {
        "Ready": ("False", "ShardsNotReady"),
        "Progressing": ("True", "WaitingForShards"),
        "Degraded": ("True", "StrandedRuns"),
    }
    # Once the worker removes the field, Degraded is back to AsExpected (its transition time moves).
    clear = workflow_status(
        2, {"CREATED": 1}, [ready_deployment("CREATED")], None, {"conditions": status["conditions"]}
    )
    degraded = next(c for c in clear["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"], degraded["message"]) == ("False", "AsExpected", "")


def test_beside_another_problem_stranded_runs_join_its_message() -> None:
    problems = [Problem("CodeMismatch", MISMATCH)]
    status = workflow_status(1, {"CREATED": 1}, [], None, {"strandedRuns": STRANDED}, problems)
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert (degraded["reason"], degraded["message"]) == ("CodeMismatch", f"{MISMATCH}; {STRANDED_MESSAGE}")


def test_malformed_stranded_entries_are_ignored() -> None:
    # The CRD's schema refuses these; the operator reads whatever the API server holds all the same.
    odd: Any = {"strandedRuns": [{"status": "PAID", "value": 2, "count": 0}, "PAID", {"count": 3}]}
    status = workflow_status(1, {"CREATED": 1}, [ready_deployment("CREATED")], None, odd)
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("False", "AsExpected")
    one = {"strandedRuns": [{"status": "B", "value": 2, "count": 1}]}
    degraded = next(c for c in workflow_status(1, {}, [], None, one)["conditions"] if c["type"] == "Degraded")
    assert degraded["message"].startswith("1 active run at statuses that no step, callback or timeout of the ")
    assert ": 1 at B (2); put the step back" in degraded["message"]
