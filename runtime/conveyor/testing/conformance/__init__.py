"""Conformance suites: every adapter of a kind must pass its suite, whatever service it talks to.

Subclass a suite under a `Test...` name and provide its fixture; the suites never assume an empty store (names
are unique per test), so a shared, real service is fine:

    from conveyor.testing.conformance import RecordStoreSuite

    class TestMyStore(RecordStoreSuite):
        @pytest.fixture
        async def record_store(self):
            store = MyStore(dsn)
            await store.open()
            yield store
            await store.close()

| suite | fixture |
| --- | --- |
| RecordStoreSuite | `record_store`: an opened RecordStore |
| EventStreamerSuite | `event_streamer`: an opened EventStreamer |
| RoleSchedulerSuite | `role_schedulers`: `(n) -> list[RoleScheduler]`, n opened schedulers standing for n processes |
| TimeoutStoreSuite | `timeout_store`: an opened TimeoutStore |
| ConnectorSuite | `connector_factory`: `(events) -> Connector` |
| WorkflowSuite | `adapters`: `() -> Adapters` (one process's adapters; repeated calls share the same services) |
"""

from conveyor.testing.conformance._adapters import Adapters
from conveyor.testing.conformance._connector import ConnectorSuite
from conveyor.testing.conformance._record_store import RecordStoreSuite
from conveyor.testing.conformance._roles import RoleSchedulerSuite
from conveyor.testing.conformance._streamer import EventStreamerSuite
from conveyor.testing.conformance._timeouts import TimeoutStoreSuite
from conveyor.testing.conformance._workflow import WorkflowSuite

__all__ = [
    "Adapters",
    "ConnectorSuite",
    "EventStreamerSuite",
    "RecordStoreSuite",
    "RoleSchedulerSuite",
    "TimeoutStoreSuite",
    "WorkflowSuite",
]
