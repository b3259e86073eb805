"""ConnectorSuite: the reference's connector test (events reach the workflow) as a consumer-level check, plus
acknowledgement and resumption."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from conveyor._core.ports import Connector, ConnectorEvent
from conveyor.testing.conformance._support import unique

ConnectorFactory = Callable[[list[ConnectorEvent]], Connector]


class ConnectorSuite:
    """Subclass and provide `connector_factory`: `(events) -> Connector` delivering those events."""

    async def test_events_in_order_and_resume_after_ack(self, connector_factory: ConnectorFactory) -> None:
        events = [ConnectorEvent(id=str(i), foreign_id=f"SKDJF-{i}") for i in range(5)]
        connector = connector_factory(events)
        name = unique("consumer")
        consumer = await connector.make(name)
        got = [await asyncio.wait_for(consumer.recv(), 10) for _ in range(3)]
        assert [e.id for e in got] == ["0", "1", "2"]
        await consumer.ack(got[0])
        await consumer.ack(got[1])
        await consumer.close()
        again = await connector.make(name)
        try:
            rest = [await asyncio.wait_for(again.recv(), 10) for _ in range(3)]
            assert [e.id for e in rest] == ["2", "3", "4"]
            assert rest[0].foreign_id == "SKDJF-2"
        finally:
            await again.close()
