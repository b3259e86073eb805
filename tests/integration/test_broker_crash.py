"""Chaos: the Kafka broker crashes mid-run (SIGKILL) and comes back on its data and port a few seconds later,
while two worker processes run a sharded workflow through it on Postgres and Leases.

The workers must ride it out: the outbox relay keeps its events until the broker has them, consumers resume from
their committed offsets, and once the broker is back every run completes with each step's outcome stored exactly
once. The broker is one of its own (scripts/kafka.sh with CONVEYOR_KAFKA_DIR), so no other test's broker dies."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.helpers import CACHE
from tests.integration.chaos import Service, survive

pytestmark = pytest.mark.slow


async def test_a_broker_crash_mid_run_loses_nothing_and_repeats_nothing(
    pg_dsn: str, kafka_bootstrap: str, kubeconfig: str, tmp_path: Path
) -> None:
    kafka = Service("kafka.sh", "CONVEYOR_KAFKA_DIR", CACHE / "kafka-chaos", "CONVEYOR_KAFKA")
    address = kafka.start()
    try:

        async def crash() -> None:
            await asyncio.to_thread(kafka.kill, kafka.directory / "kafka.pid")
            await asyncio.sleep(2)
            assert await asyncio.to_thread(kafka.run, "resume") == f"CONVEYOR_KAFKA={address}\n"

        env = {**os.environ, "CONVEYOR_PG_DSN": pg_dsn, "CONVEYOR_KAFKA": address, "KUBECONFIG": kubeconfig}
        await survive(env, tmp_path, crash, "Connection refused")
    finally:
        kafka.run("stop")
