"""A worker process of the cross-process tracing test: runs some roles of a two-step workflow on Postgres and
Kafka and writes every span it ends to a file, one JSON object a line, until SIGTERM.

    python -m tests.integration.trace_worker WORKFLOW_NAME (first|second) SPANS_FILE
    first: the outbox relay and the RECEIVED step; second: the SORTED step (CONVEYOR_PG_DSN, CONVEYOR_KAFKA)
"""

from __future__ import annotations

import asyncio
import enum
import os
import signal
import sys

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from pydantic import BaseModel

from conveyor import Builder, Run
from conveyor._engine import roles
from conveyor.adapters.kafka import KafkaStreamer
from conveyor.adapters.memory import MemoryRoleScheduler
from conveyor.adapters.postgres import PostgresRecordStore


class Parcel(BaseModel):
    handled_by: list[str] = []


class Leg(enum.IntEnum):
    RECEIVED = 1
    SORTED = 2
    LOADED = 3


def builder(name: str, identity: str) -> Builder[Parcel, Leg]:
    def sort(run: Run[Parcel, Leg]) -> Leg:
        run.object.handled_by.append(identity)
        return Leg.SORTED

    def load(run: Run[Parcel, Leg]) -> Leg:
        run.object.handled_by.append(identity)
        return Leg.LOADED

    b = Builder(name, Parcel, Leg)
    b.add_step(Leg.RECEIVED, sort, Leg.SORTED)
    b.add_step(Leg.SORTED, load, Leg.LOADED)
    return b


def chosen_roles(name: str, identity: str) -> list[str]:
    if identity == "first":
        return [roles.outbox_role(name), roles.step_role(name, Leg.RECEIVED, 1, 1)]
    return [roles.step_role(name, Leg.SORTED, 1, 1)]


def _line(span: ReadableSpan) -> str:
    return str(span.to_json(indent=None)) + "\n"


async def main(name: str, identity: str, spans_file: str) -> None:
    provider = TracerProvider()
    with open(spans_file, "w") as out:
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=out, formatter=_line)))
        trace.set_tracer_provider(provider)
        # Each process holds its own roles (disjoint): no Leases needed to keep them apart.
        wf = builder(name, identity).build(
            KafkaStreamer(os.environ["CONVEYOR_KAFKA"], partitions=2),
            PostgresRecordStore(os.environ["CONVEYOR_PG_DSN"]),
            MemoryRoleScheduler(),
        )
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await wf.run(roles=chosen_roles(name, identity))
        try:
            print(f"worker {identity} running", flush=True)
            await stop.wait()
        finally:
            await wf.stop()
            provider.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
