"""Chaos: the PostgreSQL server itself crashes mid-run (all its processes killed with SIGKILL, so it restarts
through crash recovery) while two worker processes run a sharded workflow on it, Kafka and Leases.

The workers must ride it out, neither exiting nor pausing runs, and once the server is back every run completes
with each step's outcome stored exactly once: nothing half-written survives the crash and no event is lost. The
server is a cluster of its own (scripts/postgres.sh with CONVEYOR_PG_DIR), so no other test's database dies."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from conveyor.adapters.postgres import migrate
from tests.helpers import CACHE
from tests.integration.chaos import Service, survive

pytestmark = pytest.mark.slow


async def test_a_database_crash_mid_run_loses_nothing_and_repeats_nothing(
    pg_dsn: str, kafka_bootstrap: str, kubeconfig: str, tmp_path: Path
) -> None:
    postgres = Service("postgres.sh", "CONVEYOR_PG_DIR", CACHE / "postgres-chaos", "CONVEYOR_PG_DSN")
    dsn = postgres.start()
    try:
        await migrate(dsn)

        async def crash() -> None:
            await asyncio.to_thread(postgres.kill, postgres.directory / "data" / "postmaster.pid")
            await asyncio.sleep(2)  # down for a while: the workers' stores and polls fail meanwhile
            await asyncio.to_thread(postgres.start)  # crash recovery replays the WAL

        env = {**os.environ, "CONVEYOR_PG_DSN": dsn, "CONVEYOR_KAFKA": kafka_bootstrap, "KUBECONFIG": kubeconfig}
        # Mid-query, a connection dies with the server; an idle one is found dead by the pool's check, or the next
        # connection is refused while the server is down.
        signs = ("server closed the connection unexpectedly", "discarding closed connection", "Connection refused")
        await survive(env, tmp_path, crash, signs)
    finally:
        postgres.run("stop")
