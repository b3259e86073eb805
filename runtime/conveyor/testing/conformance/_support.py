"""Small helpers the conformance suites share: unique names, records, and time comparisons."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from conveyor._core.records import Meta, Record
from conveyor._core.runstate import RunState

STARTED, MIDDLE, END = 1, 2, 3


def unique(kind: str) -> str:
    return f"conformance-{kind}-{uuid.uuid4().hex[:12]}"


def now() -> datetime:
    """The current UTC time cut to whole milliseconds (what every store keeps), read from the clock once."""
    at = datetime.now(UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def new_record(
    workflow_name: str,
    foreign_id: str = "Andrew Wormald",
    *,
    status: int = STARTED,
    run_state: RunState = RunState.INITIATED,
    created_at: datetime | None = None,
    version: int = 1,
) -> Record:
    when = created_at or now()
    return Record(
        workflow_name=workflow_name,
        foreign_id=foreign_id,
        run_id=str(uuid.uuid4()),
        run_state=run_state,
        status=status,
        object=json.dumps({"name": foreign_id}).encode(),
        created_at=when,
        updated_at=when,
        meta=Meta(run_state_reason="", status_description="Started", version=version, trace_origin="conformance"),
    )


def same_time(a: datetime, b: datetime) -> bool:
    """Stores may keep microseconds or milliseconds; both must keep the instant and be timezone-aware."""
    return a.tzinfo is not None and b.tzinfo is not None and abs(a - b) < timedelta(milliseconds=1)


def assert_same_record(expected: Record, actual: Record) -> None:
    assert (actual.workflow_name, actual.foreign_id, actual.run_id) == (
        expected.workflow_name,
        expected.foreign_id,
        expected.run_id,
    )
    assert actual.run_state is expected.run_state or actual.run_state == expected.run_state
    assert actual.status == expected.status
    assert actual.object == expected.object
    assert actual.meta == expected.meta
    assert same_time(actual.created_at, expected.created_at), (actual.created_at, expected.created_at)
    assert same_time(actual.updated_at, expected.updated_at), (actual.updated_at, expected.updated_at)
