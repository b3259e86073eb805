"""conveyor: durable, event-driven workflows for Python.

Write a business process as a state machine: steps move a typed object from one status to the next. Runs are
stored (the record store), steps talk through events (the event streamer), and each process is held by one
worker at a time (the role scheduler).

    b = Builder("order-processing", Order, OrderStatus)
    b.add_step(OrderStatus.CREATED, process_payment, OrderStatus.PAID, OrderStatus.PAYMENT_FAILED)
    wf = b.build(MemoryStreamer(), MemoryRecordStore(), MemoryRoleScheduler())
    async with wf:
        run_id = await wf.trigger("order-1")
"""

from conveyor._core.clock import Clock, SystemClock
from conveyor._core.codec import Codec, register_codec
from conveyor._core.ports import RecordFilter, SortOrder
from conveyor._core.records import Meta, Record
from conveyor._core.runstate import RunState
from conveyor._engine.builder import Builder
from conveyor._engine.client import Client, RunPage
from conveyor._engine.options import Options
from conveyor._engine.roles import ProcessInfo, ProcessKind
from conveyor._engine.run import CancelRun, PauseRun, Run, SaveAndRepeat, Skip
from conveyor._engine.spec import duration_timer, time_timer
from conveyor._engine.stranded import StrandedRuns
from conveyor._engine.workflow import Workflow

__version__ = "0.1.0"

__all__ = [
    "Builder",
    "CancelRun",
    "Client",
    "Clock",
    "Codec",
    "Meta",
    "Options",
    "SortOrder",
    "PauseRun",
    "ProcessInfo",
    "ProcessKind",
    "Record",
    "RecordFilter",
    "Run",
    "RunPage",
    "RunState",
    "SaveAndRepeat",
    "Skip",
    "StrandedRuns",
    "SystemClock",
    "Workflow",
    "__version__",
    "duration_timer",
    "register_codec",
    "time_timer",
]
