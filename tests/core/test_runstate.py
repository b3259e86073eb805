from conveyor import RunState
from conveyor._core.runstate import RUN_STATE_TRANSITIONS


def test_values_are_the_references() -> None:
    assert [(s.name, int(s)) for s in RunState] == [
        ("UNKNOWN", 0),
        ("INITIATED", 1),
        ("RUNNING", 2),
        ("PAUSED", 3),
        ("CANCELLED", 4),
        ("COMPLETED", 5),
        ("DATA_DELETED", 6),
        ("REQUESTED_DATA_DELETED", 7),
    ]


def test_only_the_references_transitions_are_allowed() -> None:
    allowed = {(a, b) for a, targets in RUN_STATE_TRANSITIONS.items() for b in targets}
    assert allowed == {
        (RunState.INITIATED, RunState.RUNNING),
        (RunState.INITIATED, RunState.PAUSED),
        (RunState.RUNNING, RunState.COMPLETED),
        (RunState.RUNNING, RunState.PAUSED),
        (RunState.RUNNING, RunState.CANCELLED),
        (RunState.PAUSED, RunState.RUNNING),
        (RunState.PAUSED, RunState.CANCELLED),
        (RunState.COMPLETED, RunState.REQUESTED_DATA_DELETED),
        (RunState.CANCELLED, RunState.REQUESTED_DATA_DELETED),
        (RunState.REQUESTED_DATA_DELETED, RunState.DATA_DELETED),
        (RunState.DATA_DELETED, RunState.REQUESTED_DATA_DELETED),
    }
    for a in RunState:
        for b in RunState:
            assert a.can_become(b) == ((a, b) in allowed)


def test_finished_and_stopped() -> None:
    assert {s for s in RunState if s.finished()} == {
        RunState.COMPLETED,
        RunState.CANCELLED,
        RunState.REQUESTED_DATA_DELETED,
        RunState.DATA_DELETED,
    }
    assert {s for s in RunState if s.stopped()} == {
        RunState.PAUSED,
        RunState.CANCELLED,
        RunState.REQUESTED_DATA_DELETED,
        RunState.DATA_DELETED,
    }
    assert RunState.REQUESTED_DATA_DELETED.label == "Requested Data Deleted"
