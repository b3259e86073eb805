"""In-memory adapters: the embedded default for demos, unit tests and single-process use. Correct under
concurrent use (threads and event loops), but nothing survives the process."""

from conveyor.adapters.memory._connector import MemoryConnector
from conveyor.adapters.memory._roles import MemoryRoleScheduler
from conveyor.adapters.memory._store import MemoryRecordStore
from conveyor.adapters.memory._streamer import MemoryStreamer
from conveyor.adapters.memory._timeouts import MemoryTimeoutStore

__all__ = [
    "MemoryConnector",
    "MemoryRecordStore",
    "MemoryRoleScheduler",
    "MemoryStreamer",
    "MemoryTimeoutStore",
]
