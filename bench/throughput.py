"""Throughput and latency on the real adapters: a 3-step workflow over N runs on Postgres + Kafka.

Prints one JSON line and a table: runs/s and transitions/s at full load, trigger->completed p50/p99 at half of
that load (each after one warm-up run, so the consumers' start-up is not counted), the bench process's CPU per
transition, and, on the same Postgres server,
pgbench's single-row commit rate with `parallel * 3` clients and with 1 client, and the ratio of our
transitions/s to each (context, not a target). Target: p50 <= 30 ms at half load. Removes its rows, topics and
pgbench's table afterwards.

    python bench/throughput.py [--runs 2000] [--parallel 4] [--seconds 10]

Uses $CONVEYOR_PG_DSN and $CONVEYOR_KAFKA, or starts the services with scripts/postgres.sh and scripts/kafka.sh.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import _flags
from _services import service
from _workload import Stage, builder
from conveyor import RunState
from conveyor.adapters.memory import MemoryRoleScheduler
from conveyor.cli._worker import settle_heap

ROOT = Path(__file__).resolve().parents[1]


def workflow(dsn: str, kafka: str, parallel: int) -> object:
    from conveyor.adapters.kafka import KafkaStreamer
    from conveyor.adapters.postgres import PostgresRecordStore

    b = builder(f"bench-{uuid.uuid4().hex[:8]}", parallel)
    return b.build(
        KafkaStreamer(kafka, partitions=max(6, parallel)),
        PostgresRecordStore(dsn),
        MemoryRoleScheduler(),
        pause_retry=None,
    )


async def remove(dsn: str, kafka: str, names: list[str]) -> None:
    """Delete what the measured workflows left, once every figure is taken: their rows (then VACUUM, so the next
    bench run does not meet the autovacuum of this one) and their topics. Each measurement uses a workflow of its
    own; left behind, they grew the tables, their indexes and the broker's partition count from run to run. Done
    between the loads instead, the cleanup ran into the half-load measurement."""
    import psycopg
    from confluent_kafka.admin import AdminClient

    tables = ("conveyor_runs", "conveyor_run_history", "conveyor_outbox")
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for table in tables:
            await conn.execute(f"DELETE FROM {table} WHERE workflow_name = ANY(%s)", (names,))
        await conn.execute(f"VACUUM {', '.join(tables)}")
    admin = AdminClient({"bootstrap.servers": kafka})
    topics = [t for t in admin.list_topics(timeout=10).topics if any(t.startswith(f"{n}-") for n in names)]
    if topics:
        for done in admin.delete_topics(topics, operation_timeout=30).values():
            await asyncio.wrap_future(done)


async def unfinished(wf: object) -> bool:
    """Whether any run of the workflow is still initiated, running or paused (every run is triggered before this is
    asked). An EXISTS on the index of unfinished runs: counting the completed ones every 50 ms read thousands of
    rows each time and took about a tenth of the server's time during the measured load."""
    async with wf.store.pool.connection() as conn:  # type: ignore[attr-defined]
        cursor = await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM conveyor_runs WHERE workflow_name = %s AND run_state = ANY(%s))",
            (wf.name, [int(RunState.INITIATED), int(RunState.RUNNING), int(RunState.PAUSED)]),  # type: ignore[attr-defined]
        )
        row = await cursor.fetchone()
    return bool(row and row[0])


async def latencies(wf: object, run_ids: list[str]) -> list[float]:
    found = []
    for run_id in run_ids:
        history = await wf.store.history(run_id)  # type: ignore[attr-defined]
        found.append((history[-1].updated_at - history[0].created_at).total_seconds() * 1000)
    return found


def cpu_seconds() -> float:
    """CPU time of this process, all threads (the Kafka client's included), user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


WARM_UP_RUNS = 24


async def warm_up(wf: object) -> None:
    """Some runs first, enough to reach every shard: the consumers' start (topics, consumer groups, first fetch)
    is not the steady state measured (with a few thousand runs it was a large part of the full-load time)."""
    ids = [f"warm-up-{i}" for i in range(WARM_UP_RUNS)]
    runs = await asyncio.gather(*(wf.trigger(foreign_id) for foreign_id in ids))  # type: ignore[attr-defined]
    for foreign_id, run_id in zip(ids, runs, strict=True):
        await wf.wait_for(foreign_id, run_id, Stage.DONE, timeout=60)  # type: ignore[attr-defined]


async def full_load(dsn: str, kafka: str, runs: int, parallel: int, names: list[str]) -> dict[str, float]:
    wf = workflow(dsn, kafka, parallel)
    names.append(wf.name)  # type: ignore[attr-defined]
    async with wf:  # type: ignore[attr-defined]
        await warm_up(wf)
        started, cpu = time.perf_counter(), cpu_seconds()
        await asyncio.gather(*(wf.trigger(f"item-{i}") for i in range(runs)))  # type: ignore[attr-defined]
        while await unfinished(wf):
            await asyncio.sleep(0.05)
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    return {
        "seconds": seconds,
        "runs_per_second": runs / seconds,
        "transitions_per_second": 3 * runs / seconds,
        # Wall-clock rates depend on what else runs on the machine; the CPU this process spends per transition
        # (triggers included) depends much less on it.
        "cpu_us_per_transition": cpu / (3 * runs) * 1e6,
    }


async def half_load(
    dsn: str, kafka: str, runs_per_second: float, parallel: int, seconds: float, names: list[str]
) -> list[float]:
    wf = workflow(dsn, kafka, parallel)
    names.append(wf.name)  # type: ignore[attr-defined]
    rate = runs_per_second / 2
    count = max(20, int(rate * seconds))
    run_ids = []
    async with wf:  # type: ignore[attr-defined]
        await warm_up(wf)
        start = time.perf_counter()
        for i in range(count):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            run_ids.append(await wf.trigger(f"half-{i}"))  # type: ignore[attr-defined]
        while await unfinished(wf):
            await asyncio.sleep(0.05)
        return await latencies(wf, run_ids)


def pgbench(dsn: str, seconds: float, clients: int) -> float:
    binary = shutil.which("pgbench") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))), None)
    if binary is None:
        sys.exit("pgbench not found (Debian's postgresql package ships it)")
    url = urlparse(dsn)
    env = {**os.environ, "PGHOST": url.hostname or "127.0.0.1", "PGPORT": str(url.port or 5432)}
    env["PGUSER"] = url.username or "postgres"
    if url.password:
        env["PGPASSWORD"] = url.password
    database = url.path.lstrip("/") or "postgres"
    # Emptied first: every run measures the same empty table, not one grown by the runs before it.
    setup = [
        "CREATE TABLE IF NOT EXISTS conveyor_bench_commits (id bigserial PRIMARY KEY, at timestamptz, body text)",
        "TRUNCATE conveyor_bench_commits",
    ]
    psql = [str(Path(binary).with_name("psql")), "-q", "-v", "ON_ERROR_STOP=1"]
    quiet = {**env, "PGOPTIONS": "-c client_min_messages=warning"}
    subprocess.run([*psql, *(arg for sql in setup for arg in ("-c", sql)), database], env=quiet, check=True)
    with tempfile.TemporaryDirectory(prefix="conveyor-pgbench-") as scratch:
        script = Path(scratch) / "commit.sql"
        script.write_text("INSERT INTO conveyor_bench_commits (at, body) VALUES (now(), 'x');\n")
        command = [str(binary), "-n", "-f", str(script), "-c", str(clients), "-j", str(min(clients, 2))]
        try:
            out = subprocess.run(
                [*command, "-T", str(max(1, round(seconds))), database],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        finally:
            subprocess.run([*psql, "-c", "DROP TABLE IF EXISTS conveyor_bench_commits", database], env=quiet)
    found = re.search(r"tps = ([\d.]+)", out)
    if not found:
        sys.exit(f"could not read pgbench's rate: {out}")
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=_flags.count, default=2000)
    parser.add_argument("--parallel", type=_flags.count, default=4)
    parser.add_argument("--seconds", type=_flags.seconds, default=10.0)
    args = parser.parse_args()
    dsn, kafka = service("postgres.sh", "CONVEYOR_PG_DSN"), service("kafka.sh", "CONVEYOR_KAFKA")
    from conveyor.adapters.postgres import migrate

    migrate(dsn) if not asyncio.iscoroutinefunction(migrate) else asyncio.run(migrate(dsn))
    settle_heap()  # as `conveyor worker` does once its workflow is built
    names: list[str] = []
    full = asyncio.run(full_load(dsn, kafka, args.runs, args.parallel, names))
    lat = sorted(asyncio.run(half_load(dsn, kafka, full["runs_per_second"], args.parallel, args.seconds, names)))
    clients = args.parallel * 3
    commits = pgbench(dsn, args.seconds, clients=clients)
    # One client, one row per transaction: the commit rate one connection gets (mostly the commit's fsync).
    commits_1 = pgbench(dsn, args.seconds, clients=1)
    asyncio.run(remove(dsn, kafka, names))
    result = {
        "bench": "throughput",
        "runs": args.runs,
        "parallel_count": args.parallel,
        "runs_per_second": round(full["runs_per_second"], 1),
        "transitions_per_second": round(full["transitions_per_second"], 1),
        "cpu_us_per_transition": round(full["cpu_us_per_transition"], 1),
        "half_load_p50_ms": round(statistics.median(lat), 1),
        "half_load_p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1),
        "pgbench_clients": clients,
        "pgbench_commits_per_second": round(commits, 1),
        "ratio_to_pgbench": round(full["transitions_per_second"] / commits, 3),
        "pgbench_1_client_commits_per_second": round(commits_1, 1),
        "ratio_to_pgbench_1_client": round(full["transitions_per_second"] / commits_1, 3),
        "workflows": names,
        "targets": {"half_load_p50_ms": "<= 30"},
    }
    print(json.dumps(result))
    for key in (
        "runs_per_second",
        "transitions_per_second",
        "cpu_us_per_transition",
        "half_load_p50_ms",
        "half_load_p99_ms",
    ):
        print(f"{key:<36} {result[key]}")
    print(
        f"{'pgbench_commits_per_second':<36} {result['pgbench_commits_per_second']} ({clients} clients, 1-row INSERTs)"
    )
    print(f"{'ratio_to_pgbench':<36} {result['ratio_to_pgbench']} (context, not a target)")
    print(f"{'pgbench_1_client_commits_per_second':<36} {result['pgbench_1_client_commits_per_second']} (1 client)")
    print(f"{'ratio_to_pgbench_1_client':<36} {result['ratio_to_pgbench_1_client']}")


if __name__ == "__main__":
    main()
