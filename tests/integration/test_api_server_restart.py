"""Chaos: the Kubernetes API server goes away mid-run (scripts/kube.sh restart-apiserver) while two worker
processes hold a sharded workflow's roles through Leases on it, with Postgres and Kafka.

A holder that cannot renew stops acting on its role before anyone may take it; once the API server is back the
roles are taken again and every run completes with each step's outcome stored exactly once, and no worker exits."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.helpers import run_script
from tests.integration.chaos import survive
from tests.services import restartable_kube

pytestmark = pytest.mark.slow


async def test_an_api_server_restart_mid_run_loses_nothing_and_repeats_nothing(
    pg_dsn: str, kafka_bootstrap: str, kubeconfig: str, tmp_path: Path
) -> None:
    restartable_kube(kubeconfig)

    async def restart() -> None:
        done = await asyncio.to_thread(run_script, "kube.sh", "restart-apiserver", timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr

    env = {**os.environ, "CONVEYOR_PG_DSN": pg_dsn, "CONVEYOR_KAFKA": kafka_bootstrap, "KUBECONFIG": kubeconfig}
    # Holders keep acting for up to two thirds of the 3 s lease after their last renewal, and two workers that hand
    # each run from step to step in process get through thousands in that time: enough runs that many are left
    # when the roles lapse.
    await survive(env, tmp_path, restart, "could not be renewed in time", runs=10000)
