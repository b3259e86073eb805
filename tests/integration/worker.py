"""A worker process for the chaos tests: runs a three-step workflow on Postgres, Kafka and Kubernetes Leases
until it is killed. Started by tests/integration/test_workers.py, which kills it mid-run on purpose.

    python -m tests.integration.worker WORKFLOW_NAME IDENTITY
    (CONVEYOR_PG_DSN, CONVEYOR_KAFKA, KUBECONFIG and CONVEYOR_NAMESPACE from the environment)
"""

from __future__ import annotations

import asyncio
import enum
import os
import signal
import sys
from collections.abc import Mapping
from datetime import timedelta

from pydantic import BaseModel

from conveyor import Builder, Run
from conveyor.adapters.base import EventStreamer, RecordStore, RoleScheduler, TimeoutStore


class Parcel(BaseModel):
    id: str = ""
    handled_by: list[str] = []


class Leg(enum.IntEnum):
    RECEIVED = 1
    SORTED = 2
    LOADED = 3
    DELIVERED = 4


def builder(name: str, identity: str) -> Builder[Parcel, Leg]:
    async def work(run: Run[Parcel, Leg], to: Leg) -> Leg:
        # Long enough that a kill lands while steps are in flight.
        await asyncio.sleep(0.01)
        run.object.handled_by.append(f"{identity}:{int(run.status)}")
        return to

    async def sort(run: Run[Parcel, Leg]) -> Leg:
        return await work(run, Leg.SORTED)

    async def load(run: Run[Parcel, Leg]) -> Leg:
        return await work(run, Leg.LOADED)

    async def deliver(run: Run[Parcel, Leg]) -> Leg:
        return await work(run, Leg.DELIVERED)

    b = Builder(name, Parcel, Leg)
    b.add_step(Leg.RECEIVED, sort, Leg.SORTED).with_options(parallel_count=3, err_backoff=timedelta(milliseconds=200))
    b.add_step(Leg.SORTED, load, Leg.LOADED).with_options(parallel_count=2, err_backoff=timedelta(milliseconds=200))
    b.add_step(Leg.LOADED, deliver, Leg.DELIVERED).with_options(err_backoff=timedelta(milliseconds=200))
    return b


def adapters(
    identity: str, env: Mapping[str, str] = os.environ
) -> tuple[EventStreamer, RecordStore, RoleScheduler, TimeoutStore]:
    from conveyor.adapters.kafka import KafkaStreamer
    from conveyor.adapters.kubernetes import LeaseRoleScheduler
    from conveyor.adapters.postgres import PostgresRecordStore, PostgresTimeoutStore

    dsn = env["CONVEYOR_PG_DSN"]
    return (
        KafkaStreamer(env["CONVEYOR_KAFKA"], partitions=6),
        PostgresRecordStore(dsn),
        LeaseRoleScheduler(
            env.get("CONVEYOR_NAMESPACE", "default"),
            kubeconfig=env.get("KUBECONFIG"),
            lease_duration=timedelta(seconds=3),
            identity=identity,
        ),
        PostgresTimeoutStore(dsn),
    )


async def main(name: str, identity: str) -> None:
    streamer, store, roles, timeouts = adapters(identity)
    wf = builder(name, identity).build(streamer, store, roles, timeout_store=timeouts)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with wf:
        print(f"worker {identity} running", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
