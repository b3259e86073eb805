"""A run and a workflow as plain data: the one shape the CLI's `-o json` and the UI's API both give."""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta, timezone

from pydantic import BaseModel

from conveyor import Builder, Run, RunState
from conveyor._core.records import Meta, Record
from conveyor._engine.run_data import object_data, record_data, status_name, workflow_data
from conveyor._engine.spec import WorkflowSpec


class Box(BaseModel):
    pass


class Stage(enum.IntEnum):
    NEW = 1
    SENT = 2
    LOST = 3


def _send(run: Run[Box, Stage]) -> Stage:
    return Stage.SENT


def _spec() -> WorkflowSpec[Box, Stage]:
    b = Builder("boxes", Box, Stage)
    b.add_step(Stage.NEW, _send, Stage.SENT, Stage.LOST)
    return b.spec()


def _record(workflow: str = "boxes", status: int = 2, obj: bytes | None = b'{"a": 1}') -> Record:
    # A time zone other than UTC, as a database session may hand timestamps back.
    when = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=timezone(timedelta(hours=2)))
    meta = Meta(run_state_reason="held", status_description="SENT", version=4, trace_origin="api")
    return Record(workflow, "box-1", "run-1", RunState.PAUSED, status, obj, when, when, meta)


def test_a_record_with_its_status_name_and_object() -> None:
    specs = {"boxes": _spec()}
    assert record_data(_record(), specs) == {
        "run_id": "run-1",
        "workflow_name": "boxes",
        "foreign_id": "box-1",
        "status": 2,
        "status_name": "SENT",
        "run_state": "PAUSED",
        "run_state_reason": "held",
        "status_description": "SENT",
        "version": 4,
        "trace_origin": "api",
        "created_at": "2026-03-04T03:06:07.890000+00:00",
        "updated_at": "2026-03-04T03:06:07.890000+00:00",
        "object": {"a": 1},
        "object_encoding": "json",
    }
    assert datetime.fromisoformat(record_data(_record(), {})["created_at"]).tzinfo is UTC
    assert "object" not in record_data(_record(), {}, with_object=False)


def test_status_names_only_where_the_workflow_and_status_are_known() -> None:
    specs = {"boxes": _spec()}
    assert status_name(_record(), specs) == "SENT"
    assert status_name(_record(workflow="crates"), specs) is None
    assert status_name(_record(status=99), specs) is None


def test_objects_as_json_text_or_base64() -> None:
    assert object_data(b'{"a": [1, "\xc3\xa9"]}') == ({"a": [1, "é"]}, "json")
    assert object_data(b"plain words") == ("plain words", "text")
    assert object_data(b"\xff\x00\x01") == ("/wAB", "base64")
    assert object_data(None) == (None, None)


def test_a_workflow_graph() -> None:
    data = workflow_data(_spec(), "TB")
    assert data["name"] == "boxes"
    assert data["statuses"] == [
        {"name": "NEW", "value": 1, "start": True, "terminal": False},
        {"name": "SENT", "value": 2, "start": False, "terminal": True},
        {"name": "LOST", "value": 3, "start": False, "terminal": True},
    ]
    assert data["transitions"] == [
        {"from": {"name": "NEW", "value": 1}, "to": {"name": "SENT", "value": 2}, "by": ["step"]},
        {"from": {"name": "NEW", "value": 1}, "to": {"name": "LOST", "value": 3}, "by": ["step"]},
    ]
    assert "\tdirection TB" in data["mermaid"]
