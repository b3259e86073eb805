"""The worker pod handler, without a cluster: a pod's events converge its Workflow only when the pod says something
new against it (it begins or stops crash-looping, exits with other words, goes away saying something), so a crash
loop's every restart and kopf's re-listing of the pods do not each cost a converge and an INFO log line."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from conveyor_operator import _handlers
from conveyor_operator._handlers import _says_something_new, worker_pod_said

# kopf types a decorated handler as its callback protocol, which wants every kwarg kopf passes; these pass the few
# the handler reads.
handle: Any = worker_pod_said
LABELS = {"conveyor.dev/workflow": "orders"}
FAILED = {"terminated": {"exitCode": 1, "reason": "Error", "message": "Error: PostgreSQL at pg:5432/x is unavailable"}}


def status(ready: bool = False, restarts: int = 0, **states: Any) -> dict[str, Any]:
    return {"containerStatuses": [{"name": "worker", "ready": ready, "restartCount": restarts, **states}]}


@pytest.fixture
def converged(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    monkeypatch.setattr(_handlers, "_converge", lambda api, namespace, name: found.append((namespace, name)))
    return found


def test_a_pod_converges_its_workflow_only_when_it_says_something_new(converged: list[tuple[str, str]]) -> None:
    memo = kopf.Memo(api=None)

    def event(type_: str | None, pod_status: dict[str, Any], uid: str = "uid-1") -> bool:
        """One watch event of the pod, as kopf delivers it: the filter, then the handler if it matched."""
        if not _says_something_new(type=type_, uid=uid, status=pod_status, memo=memo):
            return False
        handle(type=type_, uid=uid, status=pod_status, namespace="shop", labels=LABELS, memo=memo)
        return True

    # Starting, running, ready: nothing to say.
    assert not event("ADDED", status(state={"waiting": {"reason": "ContainerCreating"}}))
    assert not event("MODIFIED", status(state={"running": {}}))
    # The first exit with an error is news; every later step of the loop with the same words is not.
    assert event("MODIFIED", status(state=FAILED))
    back_off = {"waiting": {"reason": "CrashLoopBackOff"}}
    for restarts in range(1, 6):
        assert not event("MODIFIED", status(restarts=restarts, state=back_off, lastState=FAILED))
        assert not event("MODIFIED", status(restarts=restarts, state={"running": {}}, lastState=FAILED))
        assert not event(None, status(restarts=restarts, state=back_off, lastState=FAILED))  # kopf's re-list
    # Other words (migrate ran, now it fails otherwise), then ready: each is news once.
    other = {"terminated": {**FAILED["terminated"], "message": "Error: Kafka at kafka:9092 is unavailable"}}
    assert event("MODIFIED", status(restarts=6, state=back_off, lastState=other))
    assert not event("MODIFIED", status(restarts=7, state=back_off, lastState=other))
    assert event("MODIFIED", status(ready=True, restarts=7, state={"running": {}}, lastState=other))
    assert not event("MODIFIED", status(ready=True, restarts=7, state={"running": {}}, lastState=other))
    assert converged == [("shop", "orders")] * 3
    assert memo[_handlers.SAID] == {}

    # A pod that goes away saying something takes its words with it; one that said nothing is not news.
    assert event("MODIFIED", status(state=FAILED), uid="uid-2")
    assert event("DELETED", status(state=FAILED), uid="uid-2")
    assert not event("DELETED", status(state={"running": {}}), uid="uid-3")
    assert memo[_handlers.SAID] == {}
    # A worker stopped cleanly (exit 0, a rollout) says nothing either.
    assert not event("MODIFIED", status(state={"terminated": {"exitCode": 0, "reason": "Completed"}}), uid="uid-4")
    assert len(converged) == 5


def test_a_failed_converge_is_tried_again_by_the_pods_next_event(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(api: Any, namespace: str, name: str) -> None:
        raise RuntimeError("the API server is unreachable")

    monkeypatch.setattr(_handlers, "_converge", unreachable)
    memo = kopf.Memo(api=None)
    failing = status(state=FAILED)
    assert _says_something_new(type="MODIFIED", uid="uid-1", status=failing, memo=memo)
    with pytest.raises(RuntimeError):
        handle(type="MODIFIED", uid="uid-1", status=failing, namespace="shop", labels=LABELS, memo=memo)
    assert _says_something_new(type="MODIFIED", uid="uid-1", status=failing, memo=memo)
