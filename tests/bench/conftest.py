"""Running a benchmark as its README line does, on the services of the test session, and reading its JSON line.
The benches are code users run to check our figures on their machines: these tests keep them working (small sizes,
every figure present and sane, what they made removed), never hold them to a speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))  # the benches import their shared modules (_load, _workload) by name


def run_bench_script(script: str, args: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run bench/`script`; it must succeed, print one JSON line first and a table after it."""
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{script} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    first, *rest = done.stdout.splitlines()
    result: dict[str, Any] = json.loads(first)
    assert len(rest) >= 3, f"{script} printed no table after its JSON line:\n{done.stdout}"
    return result


def leftovers(env: dict[str, str], workflows: list[str]) -> dict[str, Any]:
    """What of these workflows is still there: rows in conveyor's tables, topics, Leases (by kind; empty if none)."""
    import psycopg
    from confluent_kafka.admin import AdminClient
    from kubernetes import client, config

    found: dict[str, Any] = {}
    with psycopg.connect(env["CONVEYOR_PG_DSN"]) as conn:
        for table in ("conveyor_runs", "conveyor_run_history", "conveyor_outbox"):
            row = conn.execute(f"SELECT count(*) FROM {table} WHERE workflow_name = ANY(%s)", (workflows,)).fetchone()
            if row and row[0]:
                found[table] = row[0]
        tables = conn.execute("SELECT to_regclass('conveyor_bench_commits') IS NOT NULL").fetchone()
        if tables and tables[0]:
            found["pgbench table"] = "conveyor_bench_commits"
    topics = AdminClient({"bootstrap.servers": env["CONVEYOR_KAFKA"]}).list_topics(timeout=10).topics
    if mine := sorted(t for t in topics if any(t.startswith(f"{w}-") for w in workflows)):
        found["topics"] = mine
    configuration = client.Configuration()
    config.load_kube_config(config_file=env["KUBECONFIG"], client_configuration=configuration)  # type: ignore[no-untyped-call]
    with client.ApiClient(configuration) as api:
        leases = client.CoordinationV1Api(api).list_lease_for_all_namespaces().items
    names = [lease.metadata.name for lease in leases if lease.metadata and lease.metadata.name]
    if mine := sorted(n for n in names if any(n.startswith(f"{w}-") for w in workflows)):
        found["leases"] = mine
    return found


@pytest.fixture
def services_env(pg_dsn: str, kafka_bootstrap: str, kubeconfig: str) -> dict[str, str]:
    return {**os.environ, "CONVEYOR_PG_DSN": pg_dsn, "CONVEYOR_KAFKA": kafka_bootstrap, "KUBECONFIG": kubeconfig}
