"""Reading the run states, statuses and text people type to pick runs (the UI's query strings and `conveyor runs`
options both go through these): every spelling accepted, every mistake refused naming the field."""

from __future__ import annotations

import pytest

from conveyor import RunState
from conveyor._engine import run_filters
from conveyor.errors import InvalidInput
from tests.engine._orders import Status, payment_spec


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("paused", RunState.PAUSED),
        ("PAUSED", RunState.PAUSED),
        (" Paused ", RunState.PAUSED),
        ("requested-data-deleted", RunState.REQUESTED_DATA_DELETED),
        ("Requested Data Deleted", RunState.REQUESTED_DATA_DELETED),
        ("data_deleted", RunState.DATA_DELETED),
        ("3", RunState.PAUSED),
        ("7", RunState.REQUESTED_DATA_DELETED),
    ],
)
def test_run_states_in_every_spelling(raw: str, expected: RunState) -> None:
    assert run_filters.run_state(raw) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("unknown", "a run state (INITIATED, RUNNING"),
        ("sleeping", "a run state (INITIATED, RUNNING"),
        ("", "a run state (INITIATED, RUNNING"),
        ("0", "an integer from 1 to 7"),
        ("8", "an integer from 1 to 7"),
        ("-3", "an integer from 1 to 7"),
        ("+3", "an integer from 1 to 7"),
        ("\u0663", "a run state"),  # a digit, but not an ASCII one
    ],
)
def test_bad_run_states_name_the_field(raw: str, expected: str) -> None:
    with pytest.raises(InvalidInput) as info:
        run_filters.run_state(raw, "--run-state")
    assert info.value.field == "--run-state"
    assert expected in info.value.expected


def test_statuses_by_number_or_by_name_of_a_known_workflow() -> None:
    spec = payment_spec()
    assert run_filters.status("2", None) == 2
    assert run_filters.status("2147483647", None) == 2**31 - 1
    assert run_filters.status("payment-failed", spec) == Status.PAYMENT_FAILED
    assert run_filters.status(" Paid ", spec) == Status.PAID
    for raw, spec_given, expected in (
        ("0", None, "an integer from 1 to 2147483647"),
        ("-5", None, "an integer from 1 to 2147483647"),
        ("2147483648", None, "an integer from 1 to 2147483647"),
        ("9" * 40, None, "an integer from 1 to 2147483647"),
        ("1.5", None, "a status number from 1 to 2147483647 or a status name"),
        ("1.5", spec, "a status number from 1 to 2147483647 or a status name"),
        (",", spec, "a status number from 1 to 2147483647 or a status name"),
        ("PAID", None, "a status number from 1 to 2147483647 (a status name needs its workflow)"),
        ("PAID", None, "a status name needs its workflow"),
        ("LOST", spec, "a status number or a status of orders (CREATED, PAID, PAYMENT_FAILED, FULFILLED,"),
    ):
        with pytest.raises(InvalidInput) as info:
            run_filters.status(raw, spec_given)
        assert info.value.field == "status"
        assert expected in info.value.expected, raw


def test_text_the_store_can_hold() -> None:
    assert run_filters.text("reason", "two\nlines", max_length=20, allow_newlines=True) == "two\nlines"
    for value, expected in (
        ("x" * 11, "at most 10 characters"),
        ("nul\x00", "text without control characters"),
        ("two\nlines", "text without control characters"),
        ("del\x7f", "text without control characters"),
        ("\ud800", "valid Unicode text"),
    ):
        with pytest.raises(InvalidInput) as info:
            run_filters.text("foreign_id", value, max_length=10)
        assert (info.value.field, info.value.expected) == ("foreign_id", expected)


def test_what_looks_like_a_name() -> None:
    assert all(run_filters.is_name(v) for v in ("PAID", "payment-failed", " Data deleted ", "_private", "état"))
    assert not any(run_filters.is_name(v) for v in ("7", "-1", "1.5", "", "PAID!", "a,b", "9lives"))


def test_values_given_several_times_or_with_commas() -> None:
    assert run_filters.split_values(["PAID, refunded", "3", " ", ",,4"]) == ["PAID", "refunded", "3", "4"]
