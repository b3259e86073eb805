"""A run and a workflow as plain data: the one shape the CLI's `-o json` and the UI's API both give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from conveyor import RunState
from conveyor._core.records import Meta, Record
from conveyor._engine.run_data import object_data, record_data, status_name, workflow_data
from tests.engine._orders import payment_spec


def _record(workflow: str = "orders", status: int = 2, obj: bytes | None = b'{"a": 1}') -> Record:
    # A time zone other than UTC, as a database session may hand timestamps back.
    when = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=timezone(timedelta(hours=2)))
    meta = Meta(run_state_reason="held", status_description="PAID", version=4, trace_origin="api")
    return Record(workflow, "order-1", "run-1", RunState.PAUSED, status, obj, when, when, meta)


def test_a_record_with_its_status_name_and_object() -> None:
    specs = {"orders": payment_spec()}
    assert record_data(_record(), specs) == {
        "run_id": "run-1",
        "workflow_name": "orders",
        "foreign_id": "order-1",
        "status": 2,
        "status_name": "PAID",
        "run_state": "PAUSED",
        "run_state_reason": "held",
        "status_description": "PAID",
        "version": 4,
        "trace_origin": "api",
        "forked_from": None,
        "created_at": "2026-03-04T03:06:07.890000+00:00",
        "updated_at": "2026-03-04T03:06:07.890000+00:00",
        "object": {"a": 1},
        "object_encoding": "json",
    }
    assert datetime.fromisoformat(record_data(_record(), {})["created_at"]).tzinfo is UTC
    assert "object" not in record_data(_record(), {}, with_object=False)


def test_status_names_only_where_the_workflow_and_status_are_known() -> None:
    specs = {"orders": payment_spec()}
    assert status_name(_record(), specs) == "PAID"
    assert status_name(_record(workflow="parcels"), specs) is None
    assert status_name(_record(status=99), specs) is None


def test_objects_as_json_text_or_base64() -> None:
    assert object_data(b'{"a": [1, "\xc3\xa9"]}') == ({"a": [1, "é"]}, "json")
    assert object_data(b"plain words") == ("plain words", "text")
    assert object_data(b"\xff\x00\x01") == ("/wAB", "base64")
    assert object_data(None) == (None, None)


def test_a_workflow_graph() -> None:
    data = workflow_data(payment_spec(), "TB")
    assert data["name"] == "orders"
    assert data["statuses"] == [
        {"name": "CREATED", "value": 1, "start": True, "terminal": False},
        {"name": "PAID", "value": 2, "start": False, "terminal": True},
        {"name": "PAYMENT_FAILED", "value": 3, "start": False, "terminal": True},
    ]
    assert data["transitions"] == [
        {"from": {"name": "CREATED", "value": 1}, "to": {"name": "PAID", "value": 2}, "by": ["step"]},
        {"from": {"name": "CREATED", "value": 1}, "to": {"name": "PAYMENT_FAILED", "value": 3}, "by": ["step"]},
    ]
    assert "\tdirection TB" in data["mermaid"]


def test_a_forked_run_says_where_it_came_from() -> None:
    forked = _record(status=2)
    forked.meta = Meta(version=1, forked_from="run-0", forked_from_status=1)
    specs = {"orders": payment_spec()}
    names = {"run_id": "run-0", "status": 1, "status_name": status_name(_record(status=1), specs)}
    assert record_data(forked, specs)["forked_from"] == names and names["status_name"] is not None
    assert record_data(forked, {})["forked_from"] == {"run_id": "run-0", "status": 1, "status_name": None}
