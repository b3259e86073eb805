"""Chaos: two worker processes on Postgres + Kafka + Leases compete for a sharded workflow's roles; one is killed
with SIGKILL mid-run. Every run must still complete, and no step outcome may be stored twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from conveyor import Record, RunState
from conveyor.adapters.postgres import PostgresRecordStore
from tests.integration.chaos import Worker
from tests.integration.worker import Leg, adapters, builder

RUNS = 300


async def test_a_killed_worker_loses_nothing(
    pg_dsn: str, kafka_bootstrap: str, kubeconfig: str, api: Any, tmp_path: Path
) -> None:
    name = f"chaos-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "CONVEYOR_PG_DSN": pg_dsn, "CONVEYOR_KAFKA": kafka_bootstrap, "KUBECONFIG": kubeconfig}
    first, second = Worker(name, "first", env, tmp_path), Worker(name, "second", env, tmp_path)
    streamer, store, roles, timeouts = adapters("api", env)
    triggering = builder(name, "api").build(streamer, store, roles, timeout_store=timeouts)
    await triggering.run(roles=())
    try:
        # Half the runs before the kill, half after: the survivor has work of its own however fast the first was.
        run_ids = [await triggering.trigger(f"parcel-{i}") for i in range(RUNS // 2)]
        checker = PostgresRecordStore(pg_dsn)
        await checker.open()
        try:
            async with asyncio.timeout(60):
                while sum(r.run_state is RunState.COMPLETED for r in await _all(checker, name)) < RUNS // 6:
                    await asyncio.sleep(0.05)
            held = await asyncio.to_thread(_roles_held_by, api, name, "first")
            assert held, "the worker about to be killed holds no role: the test would prove nothing"
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(10)
            run_ids += [await triggering.trigger(f"parcel-{i}") for i in range(RUNS // 2, RUNS)]
            async with asyncio.timeout(120):
                while sum(r.run_state is RunState.COMPLETED for r in await _all(checker, name)) < RUNS:
                    await asyncio.sleep(0.1)
            for run_id in run_ids:
                history = await checker.history(run_id)
                assert [h.status for h in history] == [Leg.RECEIVED, Leg.SORTED, Leg.LOADED, Leg.DELIVERED]
                assert [h.meta.version for h in history] == [1, 2, 3, 4]
            # Both processes did steps: the survivor took over the killed one's roles.
            workers: set[str] = set()
            for record in await _all(checker, name):
                assert record.object is not None, record
                workers |= {entry.split(":")[0] for entry in json.loads(record.object)["handled_by"]}
            assert workers == {"first", "second"}, workers
        finally:
            await checker.close()
    finally:
        await triggering.stop()
        for worker in (first, second):
            worker.stop()


def _roles_held_by(api: Any, workflow: str, identity: str) -> list[str]:
    from kubernetes import client

    held = []
    for lease in client.CoordinationV1Api(api).list_namespaced_lease("default").items:
        holder = lease.spec.holder_identity if lease.spec is not None else None
        role = (lease.metadata.annotations or {}).get("conveyor.dev/role", "") if lease.metadata is not None else ""
        if holder == identity and role.startswith(workflow):
            held.append(role)
    return held


async def _all(store: PostgresRecordStore, name: str) -> list[Record]:
    return await store.list(name, limit=RUNS + 10)


pytestmark = pytest.mark.slow
