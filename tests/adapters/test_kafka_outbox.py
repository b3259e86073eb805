"""Events from the outbox go to Kafka as the outbox stored them (no second encoding), and a receiver reads them
exactly as it reads an event encoded by the sender: same foreign id, type and headers."""

from __future__ import annotations

import asyncio
import uuid

from conveyor.adapters.base import OutgoingEvent, decode_outbox_data, outbox_data, outbox_event
from conveyor.adapters.kafka import KafkaStreamer
from conveyor.testing.conformance._support import new_record


async def test_an_event_from_the_outbox_is_received_like_one_the_sender_encoded(kafka_bootstrap: str) -> None:
    streamer = KafkaStreamer(kafka_bootstrap, partitions=1)
    await streamer.open()
    try:
        topic = f"outbox-{uuid.uuid4().hex[:8]}"
        record = new_record("outbox-wf", "fid-1")
        stored = decode_outbox_data(outbox_data(record))
        assert stored.data == outbox_data(record)
        plain = outbox_event(record)
        assert plain.data is None and plain == stored  # the payload is no part of the event's identity
        sender = await streamer.sender(topic)
        await sender.send([stored, plain])
        receiver = await streamer.receiver(topic, f"r-{uuid.uuid4().hex[:6]}")
        try:
            first = await asyncio.wait_for(receiver.recv(), 20)
            second = await asyncio.wait_for(receiver.recv(), 20)
        finally:
            await receiver.close()
        for event in (first, second):
            assert (event.foreign_id, event.type, dict(event.headers)) == (
                record.foreign_id,
                record.status,
                dict(plain.headers),
            )
            assert event.run_id == record.run_id and event.record_version == record.meta.version
    finally:
        await streamer.close()


def test_a_decoded_outbox_event_keeps_its_payload_and_an_encoded_one_has_none() -> None:
    record = new_record("outbox-wf", "fid-2")
    data = outbox_data(record)
    event = decode_outbox_data(data)
    assert event.data is data
    assert OutgoingEvent(event.foreign_id, event.type, event.headers) == event
    assert "data" not in repr(event)
