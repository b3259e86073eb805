"""A Workflow's status from its workers' pods, without a cluster: a worker that keeps failing (in CrashLoopBackOff,
or not ready since a run that ended with an error) makes the Workflow Degraded, WorkerCrashLooping, naming the pods
and their last words; a ready, starting or cleanly stopped worker does not; CodeMismatch comes first."""

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
