"""The operator's /readyz (`_main.readiness`): a standby is ready; a replica running kopf (leading, or without
leader election) is ready only once kopf has had an answer from the API server and while it is answered; starting
and stepping back are not ready."""

from __future__ import annotations

import pytest

from conveyor_operator._main import readiness
from conveyor_operator._reach import ApiReach


@pytest.fixture
def reach() -> ApiReach:
    found = ApiReach()
    found.started()
    return found


@pytest.mark.parametrize("state", ["leading", "running"])
def test_kopf_is_ready_once_answered_and_while_answered(reach: ApiReach, state: str) -> None:
    assert readiness(state, reach) == "kopf has had no answer from the API server yet"
    reach.answered()
    assert readiness(state, reach) is None
    reach.failed(ConnectionRefusedError("refused"))
    why = readiness(state, reach)
    assert why is not None and why.startswith("kopf cannot reach the API server")
    reach.answered()
    assert readiness(state, reach) is None


def test_a_standby_is_ready_whatever_kopf_would_say(reach: ApiReach) -> None:
    assert readiness("standby: waiting for Lease ns/conveyor-leader", reach) is None


@pytest.mark.parametrize("state", ["starting", "stepping back: kopf has had no answer from the API server for 60s"])
def test_starting_or_stepping_back_is_not_ready(reach: ApiReach, state: str) -> None:
    reach.answered()
    assert readiness(state, reach) == state
