"""Parsing of query strings and forms, field by field."""

from __future__ import annotations

import pytest
from multidict import MultiDict

from conveyor import RunState, SortOrder
from conveyor.errors import InvalidInput
from conveyor.ui import _query
from tests.ui.conftest import Stage, make_spec


def parse(pairs: list[tuple[str, str]]) -> _query.ListQuery:
    return _query.list_query(MultiDict(pairs), {"parcels": make_spec("parcels")})


def test_defaults() -> None:
    query = parse([])
    assert query == _query.ListQuery()
    assert query.order is SortOrder.DESCENDING and query.limit == 25 and query.record_filter() is None


def test_every_field() -> None:
    query = parse(
        [
            ("workflow", "parcels"),
            ("status", "checked"),
            ("status", "4"),
            ("status", "CHECKED"),
            ("run_state", "paused"),
            ("run_state", "2"),
            ("foreign_id", "a"),
            ("foreign_id", "b"),
            ("limit", "7"),
            ("cursor", "run-1"),
            ("order", "asc"),
        ]
    )
    assert query.statuses == (Stage.CHECKED, Stage.REJECTED)  # repeats folded
    assert parse([("workflow", "parcels"), ("status", "checked, 4,,SHIPPED")]).statuses == (2, 4, 3)
    assert query.run_states == (RunState.PAUSED, RunState.RUNNING)
    assert query.foreign_ids == ("a", "b")
    assert (query.limit, query.cursor, query.order) == (7, "run-1", SortOrder.ASCENDING)
    flt = query.record_filter()
    assert flt is not None and list(flt.statuses) == [2, 4]


def test_params_round_trip() -> None:
    query = parse([("workflow", "parcels"), ("status", "2"), ("run_state", "PAUSED"), ("limit", "9"), ("order", "asc")])
    assert parse(query.params()) == query
    assert ("cursor", "x") in query.params(cursor="x")


@pytest.mark.parametrize(
    ("pairs", "field"),
    [
        ([("limit", "0")], "limit"),
        ([("limit", "1" * 13)], "limit"),
        ([("limit", "\u0663")], "limit"),  # a digit, but not an ASCII one
        ([("status", "SHIPPED")], "status"),  # a name without a workflow
        ([("workflow", "unknown"), ("status", "SHIPPED")], "status"),
        ([("workflow", "parcels"), ("status", "LOST")], "status"),
        ([("run_state", "-1")], "run_state"),
        ([("order", "random")], "order"),
        ([("order", "asc"), ("order", "desc")], "order"),
        ([("workflow", "a"), ("workflow", "b")], "workflow"),
        ([("workflow", "x" * 257)], "workflow"),
        ([("workflow", "tab\there")], "workflow"),
        ([("foreign_id", "\ud800")], "foreign_id"),
        ([("foreign_id", str(i)) for i in range(21)], "foreign_id"),
        ([("cursor", "\x7f")], "cursor"),
        ([("status", ",".join(["1"] * 21))], "status"),
        ([("status", "1, x")], "status"),
        ([("page", "2")], "page"),
    ],
)
def test_bad_fields(pairs: list[tuple[str, str]], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse(pairs)
    assert info.value.field == field


def test_action_form() -> None:
    form = _query.action_form(MultiDict([("csrf_token", "t"), ("reason", "line one\nline two")]))
    assert (form.csrf_token, form.reason) == ("t", "line one\nline two")
    assert _query.action_form(MultiDict()) == _query.ActionForm("", "")
    for pairs, field in (
        ([("reason", "r" * 1025)], "reason"),
        ([("reason", "nul\x00")], "reason"),
        ([("reason", "a"), ("reason", "b")], "reason"),
        ([("target", "x")], "target"),
    ):
        with pytest.raises(InvalidInput) as info:
            _query.action_form(MultiDict(pairs))
        assert info.value.field == field


def test_a_file_where_text_was_expected() -> None:
    with pytest.raises(InvalidInput, match="not a file"):
        _query.action_form(MultiDict([("reason", object())]))


def test_run_ids_and_actions() -> None:
    assert _query.run_id("abc") == "abc"
    for bad in ("", "x" * 257, "a\nb"):
        with pytest.raises(InvalidInput, match="run_id"):
            _query.run_id(bad)
    assert _query.action("pause") == "pause"
    with pytest.raises(InvalidInput, match="action: expected one of pause, resume, cancel, delete"):
        _query.action("restart")
