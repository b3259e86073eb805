"""The stored and streamed shapes: Record (a run as persisted), Event, OutboxEvent, TimeoutRecord.

These are the wire contract between the engine and the adapters, so they are plain slotted dataclasses
holding bytes and ints, never the user's types; the engine turns a Record into a typed Run.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Final

import pydantic_core

from conveyor._core.runstate import RunState

# Event headers, named as the reference names them.
HEADER_WORKFLOW_NAME: Final = "workflow_name"
HEADER_FOREIGN_ID: Final = "foreign_id"
HEADER_TOPIC: Final = "topic"
HEADER_RUN_ID: Final = "run_id"
HEADER_RUN_STATE: Final = "run_state"
HEADER_RECORD_VERSION: Final = "record_version"
HEADER_CONNECTOR_DATA: Final = "connector_data"
# W3C trace context (https://www.w3.org/TR/trace-context/), present only when the writer traced its write.
HEADER_TRACEPARENT: Final = "traceparent"
HEADER_TRACESTATE: Final = "tracestate"


@dataclasses.dataclass(slots=True, frozen=True, init=False)
class Meta:
    """Context kept beside a run: why its state is what it is, and the optimistic-concurrency version.

    Its `__init__` is written out below the class, not generated: a frozen dataclass's sets each field through
    `object.__setattr__`, looked up every time, about 0.85 us for these eight; the slots' own setters take 0.5.
    A Meta is made for every stored version."""

    run_state_reason: str = ""
    status_description: str = ""
    # Incremented on every store; an event carries the version it was written with, so a consumer can tell a
    # duplicate or stale event (record already newer) from a lagging read (record older).
    version: int = 0
    trace_origin: str = ""
    # Set on a run made by `Client.fork`: the run it was forked from and the status it was forked at. Kept for the
    # run's life (every next version carries it).
    forked_from: str = ""
    forked_from_status: int = 0
    # The W3C trace context of the span that wrote this version (empty when tracing is off). It travels in the
    # version's event only, never in the run row: it is carried here because the store computes the outbox payload
    # from the record, sometimes in another task (a batch), where the writer's context is not current.
    trace_context: str = ""
    trace_state: str = ""

    def __init__(
        self,
        run_state_reason: str = "",
        status_description: str = "",
        version: int = 0,
        trace_origin: str = "",
        forked_from: str = "",
        forked_from_status: int = 0,
        trace_context: str = "",
        trace_state: str = "",
    ) -> None:
        _set_reason(self, run_state_reason)
        _set_description(self, status_description)
        _set_version(self, version)
        _set_origin(self, trace_origin)
        _set_forked_from(self, forked_from)
        _set_forked_from_status(self, forked_from_status)
        _set_trace_context(self, trace_context)
        _set_trace_state(self, trace_state)


# The setters of Meta's slots (made by the dataclass decorator, so read once it has run): see Meta's docstring.
(
    _set_reason,
    _set_description,
    _set_version,
    _set_origin,
    _set_forked_from,
    _set_forked_from_status,
    _set_trace_context,
    _set_trace_state,
) = (Meta.__dict__[field.name].__set__ for field in dataclasses.fields(Meta))


@dataclasses.dataclass(slots=True)
class Record:
    """A run as the record store keeps it. `object` is the encoded user object, or None once data is deleted."""

    workflow_name: str
    foreign_id: str
    run_id: str
    run_state: RunState
    status: int
    object: bytes | None
    created_at: datetime
    updated_at: datetime
    meta: Meta = dataclasses.field(default_factory=Meta)

    def copy(self) -> Record:
        return Record(
            self.workflow_name,
            self.foreign_id,
            self.run_id,
            self.run_state,
            self.status,
            self.object,
            self.created_at,
            self.updated_at,
            self.meta,  # immutable: shared, not copied
        )


@dataclasses.dataclass(slots=True, frozen=True, init=False)
class Event:
    """A notification that a run changed: it tells what happened, never the new state itself. (Its `__init__`
    sets the slots through their setters, as Meta's does: one is made for every event received.)"""

    id: int
    foreign_id: str
    type: int
    headers: Mapping[str, str]
    created_at: datetime

    def __init__(self, id: int, foreign_id: str, type: int, headers: Mapping[str, str], created_at: datetime) -> None:
        _set_event_id(self, id)
        _set_event_foreign_id(self, foreign_id)
        _set_event_type(self, type)
        _set_event_headers(self, headers)
        _set_event_created_at(self, created_at)

    @property
    def run_id(self) -> str:
        return self.headers.get(HEADER_RUN_ID, "")

    @property
    def record_version(self) -> int | None:
        raw = self.headers.get(HEADER_RECORD_VERSION)
        return int(raw) if raw is not None else None

    @property
    def run_state(self) -> RunState | None:
        raw = self.headers.get(HEADER_RUN_STATE)
        return RunState(int(raw)) if raw is not None else None


@dataclasses.dataclass(slots=True, frozen=True, init=False)
class OutgoingEvent:
    """What a sender publishes; the streamer assigns the id and the timestamp.

    `data` is the outbox payload the event was decoded from (`decode_outbox_data`), if it was: the same event as
    JSON, which a streamer may publish as it is instead of encoding the event again. It is not part of the
    event's identity (equality, repr)."""

    foreign_id: str
    type: int
    headers: Mapping[str, str]
    data: bytes | None = dataclasses.field(default=None, compare=False, repr=False)

    def __init__(self, foreign_id: str, type: int, headers: Mapping[str, str], data: bytes | None = None) -> None:
        # As Event's: one is made for every stored version.
        _set_outgoing_foreign_id(self, foreign_id)
        _set_outgoing_type(self, type)
        _set_outgoing_headers(self, headers)
        _set_outgoing_data(self, data)


# The setters of Event's and OutgoingEvent's slots (see Meta's docstring).
_set_event_id, _set_event_foreign_id, _set_event_type, _set_event_headers, _set_event_created_at = (
    Event.__dict__[field.name].__set__ for field in dataclasses.fields(Event)
)
_set_outgoing_foreign_id, _set_outgoing_type, _set_outgoing_headers, _set_outgoing_data = (
    OutgoingEvent.__dict__[field.name].__set__ for field in dataclasses.fields(OutgoingEvent)
)


class OutboxEvent:
    """An event written in the same transaction as the record change it announces.

    `data` is the stored payload (`outbox_data(record)`). A store that keeps the event in memory may give the
    decoded event instead and let `data` be encoded only if someone asks for it."""

    __slots__ = ("_data", "_event", "created_at", "id", "workflow_name")

    def __init__(
        self,
        id: str,
        workflow_name: str,
        data: bytes | None,
        created_at: datetime,
        *,
        event: OutgoingEvent | None = None,
    ) -> None:
        if data is None and event is None:
            raise ValueError("OutboxEvent: expected data or event")
        self.id = id
        self.workflow_name = workflow_name
        self.created_at = created_at
        self._data = data
        self._event = event

    @property
    def data(self) -> bytes:
        if self._data is None:
            assert self._event is not None
            self._data = encode_outbox_event(self._event)
        return self._data

    def decode(self) -> OutgoingEvent:
        if self._event is None:
            self._event = decode_outbox_data(self.data)
        return self._event

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OutboxEvent):
            return NotImplemented
        return (self.id, self.workflow_name, self.data, self.created_at) == (
            other.id,
            other.workflow_name,
            other.data,
            other.created_at,
        )

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"OutboxEvent(id={self.id!r}, workflow_name={self.workflow_name!r}, event={self.decode()!r})"


@dataclasses.dataclass(slots=True, frozen=True)
class TimeoutRecord:
    """A scheduled timeout of a run at a status. `timer` is the index of the timeout among the status's timeouts,
    `record_version` the run's version when it was scheduled: together they make scheduling idempotent."""

    id: int
    workflow_name: str
    foreign_id: str
    run_id: str
    status: int
    expire_at: datetime
    created_at: datetime
    completed: bool = False
    timer: int = 0
    record_version: int = 0


@functools.lru_cache(maxsize=4096)
def topic(workflow_name: str, status: int) -> str:
    return f"{_topic_prefix(workflow_name)}-{status}"


@functools.lru_cache(maxsize=1024)
def delete_topic(workflow_name: str) -> str:
    return f"{_topic_prefix(workflow_name)}-delete"


@functools.lru_cache(maxsize=1024)
def run_state_change_topic(workflow_name: str) -> str:
    return f"{_topic_prefix(workflow_name)}-run-state-change"


def _topic_prefix(workflow_name: str) -> str:
    return workflow_name.replace(" ", "_")


_STATE_CHANGE_STATES = frozenset({RunState.PAUSED, RunState.CANCELLED, RunState.DATA_DELETED, RunState.COMPLETED})


def event_topic(record: Record) -> str:
    """The topic an event about this record goes to, by the reference's rules: data-deletion requests to the
    delete topic, stops and completions to the run-state-change topic, everything else to its status's topic."""
    if record.run_state is RunState.REQUESTED_DATA_DELETED:
        return delete_topic(record.workflow_name)
    if record.run_state in _STATE_CHANGE_STATES:
        return run_state_change_topic(record.workflow_name)
    return topic(record.workflow_name, record.status)


# A run state's header value, looked up: str(int(state)) is two calls, for every event.
_RUN_STATE_TEXT: Final = {state: str(int(state)) for state in RunState}


def event_headers(record: Record) -> dict[str, str]:
    meta = record.meta
    headers = {
        HEADER_FOREIGN_ID: record.foreign_id,
        HEADER_WORKFLOW_NAME: record.workflow_name,
        HEADER_TOPIC: event_topic(record),
        HEADER_RUN_ID: record.run_id,
        HEADER_RUN_STATE: _RUN_STATE_TEXT[record.run_state],
        HEADER_RECORD_VERSION: str(meta.version),
    }
    if meta.trace_context:
        headers[HEADER_TRACEPARENT] = meta.trace_context
        if meta.trace_state:
            headers[HEADER_TRACESTATE] = meta.trace_state
    return headers


def outbox_event(record: Record) -> OutgoingEvent:
    """The event announcing a record change."""
    return OutgoingEvent(record.foreign_id, record.status, event_headers(record))  # positional: per transition


def compact_json(value: object) -> bytes:
    """`value` as compact JSON in UTF-8. pydantic's encoder is about twice as fast as the json module's (it runs for
    every stored record); a string it cannot encode (a lone surrogate) goes through the json module, escaped, so
    that the store refuses that one record rather than the encoder failing a whole batch."""
    try:
        return pydantic_core.to_json(value)
    except pydantic_core.PydanticSerializationError:
        return json.dumps(value, separators=(",", ":")).encode()


def outbox_data(record: Record) -> bytes:
    """The outbox payload for a record change: every store writes this in the same transaction as the record.
    The same bytes as `encode_outbox_event(outbox_event(record))`, without the event made on the way."""
    return compact_json({"foreign_id": record.foreign_id, "type": int(record.status), "headers": event_headers(record)})


def encode_outbox_event(event: OutgoingEvent) -> bytes:
    return compact_json({"foreign_id": event.foreign_id, "type": int(event.type), "headers": dict(event.headers)})


def decode_outbox_data(data: bytes) -> OutgoingEvent:
    # pydantic's JSON parser: a few times faster than the json module's, and the relay decodes every event.
    raw = pydantic_core.from_json(data)
    return OutgoingEvent(foreign_id=raw["foreign_id"], type=int(raw["type"]), headers=raw["headers"], data=data)
