"""What an adapter author needs: the protocols the engine drives, the shapes it exchanges with them, and the
helpers that give every store the same outbox payload. `shard_of` (CRC-32 of the foreign id modulo the shard
count) is the sharding of the memory streamer and of connector events; a streamer may shard otherwise (the Kafka
streamer shards by murmur2 partition) as long as every event of a foreign id goes to one shard.

Check an implementation with the pytest suites in `conveyor.testing.conformance`.
"""

from conveyor._core.clock import Clock, SystemClock
from conveyor._core.ports import (
    Connector,
    ConnectorConsumer,
    ConnectorEvent,
    EventReceiver,
    EventSender,
    EventStreamer,
    OutboxSignal,
    RecordFilter,
    RecordStore,
    RoleLease,
    RoleScheduler,
    Shard,
    SortOrder,
    TimeoutStore,
)
from conveyor._core.records import (
    HEADER_CONNECTOR_DATA,
    HEADER_FOREIGN_ID,
    HEADER_RECORD_VERSION,
    HEADER_RUN_ID,
    HEADER_RUN_STATE,
    HEADER_TOPIC,
    HEADER_WORKFLOW_NAME,
    Event,
    Meta,
    OutboxEvent,
    OutgoingEvent,
    Record,
    TimeoutRecord,
    decode_outbox_data,
    delete_topic,
    encode_outbox_event,
    event_headers,
    event_topic,
    outbox_data,
    outbox_event,
    run_state_change_topic,
    topic,
)
from conveyor._core.runstate import RunState
from conveyor._core.sharding import shard_of

__all__ = [
    "HEADER_CONNECTOR_DATA",
    "HEADER_FOREIGN_ID",
    "HEADER_RECORD_VERSION",
    "HEADER_RUN_ID",
    "HEADER_RUN_STATE",
    "HEADER_TOPIC",
    "HEADER_WORKFLOW_NAME",
    "Clock",
    "Connector",
    "ConnectorConsumer",
    "ConnectorEvent",
    "Event",
    "EventReceiver",
    "EventSender",
    "EventStreamer",
    "Meta",
    "SortOrder",
    "OutboxEvent",
    "OutboxSignal",
    "OutgoingEvent",
    "Record",
    "RecordFilter",
    "RecordStore",
    "RoleLease",
    "RoleScheduler",
    "RunState",
    "Shard",
    "SystemClock",
    "TimeoutRecord",
    "TimeoutStore",
    "decode_outbox_data",
    "delete_topic",
    "event_headers",
    "encode_outbox_event",
    "event_topic",
    "outbox_data",
    "outbox_event",
    "run_state_change_topic",
    "shard_of",
    "topic",
]
