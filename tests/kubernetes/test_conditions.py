"""conveyor.kubernetes.condition, the meta/v1 Condition semantics both the operator's Workflow status and the
workers' WorkflowRun status rely on: lastTransitionTime kept while the status stays and moved when it flips,
observedGeneration, a message capped at the API's limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from conveyor.kubernetes import MAX_CONDITION_MESSAGE, condition, conditions_by_type, format_time

EARLIER = "2026-01-02T03:04:05Z"
NOW = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def test_a_new_condition_starts_now_with_its_generation() -> None:
    found = condition("Ready", True, "AllShardsReady", "all 3 shards ready", generation=4, now=NOW)
    assert found == {
        "type": "Ready",
        "status": "True",
        "reason": "AllShardsReady",
        "message": "all 3 shards ready",
        "lastTransitionTime": "2026-05-06T07:08:09Z",
        "observedGeneration": 4,
    }


def test_the_transition_time_stays_while_the_status_does_whatever_else_changes() -> None:
    before = {"Ready": {"type": "Ready", "status": "False", "reason": "ShardsNotReady", "lastTransitionTime": EARLIER}}
    found = condition("Ready", False, "RolloutStuck", "Deployment w-1: stuck", previous=before, generation=5, now=NOW)
    assert found["lastTransitionTime"] == EARLIER
    assert (found["reason"], found["message"], found["observedGeneration"]) == (
        "RolloutStuck",
        "Deployment w-1: stuck",
        5,
    )


def test_the_transition_time_moves_when_the_status_flips() -> None:
    before = {"Ready": {"type": "Ready", "status": "False", "lastTransitionTime": EARLIER}}
    assert condition("Ready", True, "AllShardsReady", "", previous=before, now=NOW)["lastTransitionTime"] == (
        "2026-05-06T07:08:09Z"
    )
    unknown = condition("Ready", "Unknown", "Lost", "", previous=before, now=NOW)
    assert (unknown["status"], unknown["lastTransitionTime"]) == ("Unknown", "2026-05-06T07:08:09Z")


def test_a_previous_condition_without_a_transition_time_or_of_another_type_gives_none() -> None:
    before = {
        "Ready": {"type": "Ready", "status": "True"},
        "Degraded": {"status": "True", "lastTransitionTime": EARLIER},
    }
    assert condition("Ready", True, "R", "", previous=before, now=NOW)["lastTransitionTime"] == "2026-05-06T07:08:09Z"
    assert condition("Progressing", True, "R", "", previous=before, now=NOW)["lastTransitionTime"] == (
        "2026-05-06T07:08:09Z"
    )


def test_without_a_generation_there_is_no_observed_generation() -> None:
    assert "observedGeneration" not in condition("Finished", False, "RUNNING", "run r is running")


def test_without_now_the_time_is_the_current_one() -> None:
    found = condition("Ready", True, "R", "")
    moment = datetime.strptime(found["lastTransitionTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - moment) < timedelta(seconds=5)


def test_the_message_is_capped_at_the_api_limit_or_the_one_given() -> None:
    assert MAX_CONDITION_MESSAGE == 32768
    long = "é" * (MAX_CONDITION_MESSAGE + 10)
    assert condition("Degraded", True, "R", long)["message"] == "é" * MAX_CONDITION_MESSAGE
    assert condition("Degraded", True, "R", "abcdef", max_message=3)["message"] == "abc"
    assert condition("Degraded", True, "R", "abc")["message"] == "abc"


def test_a_status_is_true_false_or_unknown() -> None:
    assert condition("Ready", "True", "R", "")["status"] == "True"
    assert condition("Ready", "False", "R", "")["status"] == "False"
    with pytest.raises(ValueError, match="True, False or Unknown"):
        condition("Ready", "true", "R", "")


def test_conditions_by_type_reads_a_status_as_the_api_server_has_it() -> None:
    ready = {"type": "Ready", "status": "True"}
    assert conditions_by_type([ready, {"status": "False"}, "junk", {"type": 3}]) == {"Ready": ready}
    assert conditions_by_type(None) == {}
    assert conditions_by_type({"type": "Ready"}) == {}
    # A copy: changing what it returns leaves the object's status alone.
    conditions_by_type([ready])["Ready"]["status"] = "False"
    assert ready["status"] == "True"


def test_a_keyed_set_of_conditions_as_the_workflowrun_status_keeps_them() -> None:
    old = conditions_by_type(
        [
            {"type": "Triggered", "status": "True", "reason": "Triggered", "lastTransitionTime": EARLIER},
            {"type": "Finished", "status": "False", "reason": "RUNNING", "lastTransitionTime": EARLIER},
        ]
    )
    current = dict(old)
    current["Finished"] = condition("Finished", True, "COMPLETED", "run r is completed", previous=old, now=NOW)
    current["Triggered"] = condition("Triggered", True, "Triggered", "run r triggered", previous=old, now=NOW)
    assert current["Finished"]["lastTransitionTime"] == "2026-05-06T07:08:09Z"
    assert current["Triggered"]["lastTransitionTime"] == EARLIER


def test_format_time_is_utc_to_the_second() -> None:
    assert format_time(NOW) == "2026-05-06T07:08:09Z"
    assert format_time(datetime(2026, 5, 6, 9, 8, 9, tzinfo=timezone(timedelta(hours=2)))) == "2026-05-06T07:08:09Z"
