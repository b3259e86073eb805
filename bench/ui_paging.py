"""How fast the UI stays on a big store: fills Postgres with N runs of one workflow (COPY straight into conveyor_runs
and, three versions a run, conveyor_run_history; default 100k), then times the runs list (the first page, a deep
page by keyset cursor, which the UI uses, and by offset, which it avoids, and filtered pages), the workflow page
(count_active and the newest paused runs) and a run's page (the run and its history, for its path), through the
RecordStore calls and through the UI's HTTP pages and API. Figures are printed, not asserted: one JSON line, then a
table (median of --repeat tries, in ms).

    python bench/ui_paging.py [--runs 100000] [--repeat 7] [--keep]

Uses $CONVEYOR_PG_DSN, or starts Postgres with scripts/postgres.sh. The runs are deleted afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _flags
from _services import service
from _workload import builder
from conveyor import RecordFilter, RunState, SortOrder

ROOT = Path(__file__).resolve().parents[1]
PAGE = 25


def state_of(i: int) -> RunState:
    # Mostly finished runs, as a store that has been running a while holds: the rare states are the ones an
    # operator filters for.
    bucket = i % 100
    if bucket < 2:
        return RunState.PAUSED
    if bucket < 3:
        return RunState.CANCELLED
    if bucket < 10:
        return RunState.RUNNING
    return RunState.COMPLETED


async def fill(dsn: str, workflow: str, count: int) -> list[str]:
    import psycopg

    run_ids = [str(uuid.uuid4()) for _ in range(count)]
    base = datetime.now(UTC) - timedelta(days=30)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        async with conn.cursor() as cur:
            columns = "run_id, workflow_name, foreign_id, run_state, status, object, created_at, updated_at, version"
            async with cur.copy(f"COPY conveyor_runs ({columns}) FROM STDIN") as copy:
                for i, run_id in enumerate(run_ids):
                    when = base + timedelta(seconds=i)
                    obj = json.dumps({"id": f"order-{i}", "amount_cents": i % 9000}).encode()
                    await copy.write_row(
                        (run_id, workflow, f"order-{i}", int(state_of(i)), 1 + i % 4, obj, when, when, 3)
                    )
            # The history a run page reads for the run's path: initiated at the first status, running at its
            # status, then where it is now.
            columns = "run_id, version, workflow_name, foreign_id, run_state, status, object, created_at, updated_at"
            async with cur.copy(f"COPY conveyor_run_history ({columns}) FROM STDIN") as copy:
                for i, run_id in enumerate(run_ids):
                    when = base + timedelta(seconds=i)
                    obj = json.dumps({"id": f"order-{i}", "amount_cents": i % 9000}).encode()
                    status = 1 + i % 4
                    versions = ((1, RunState.INITIATED, 1), (2, RunState.RUNNING, status), (3, state_of(i), status))
                    for version, state, at in versions:
                        await copy.write_row((run_id, version, workflow, f"order-{i}", int(state), at, obj, when, when))
        await conn.execute("ANALYZE conveyor_runs")
        await conn.execute("ANALYZE conveyor_run_history")
    return run_ids


async def remove(dsn: str, workflow: str) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("DELETE FROM conveyor_runs WHERE workflow_name = %s", (workflow,))
        await conn.execute("DELETE FROM conveyor_run_history WHERE workflow_name = %s", (workflow,))


async def timed(fn: Callable[[], Awaitable[Any]], repeat: int) -> float:
    await fn()  # warm: plan cache, pool connection
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(samples), 2)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=_flags.count, default=100_000)
    parser.add_argument("--repeat", type=_flags.count, default=7)
    parser.add_argument("--keep", action="store_true", help="leave the runs in the database")
    args = parser.parse_args()

    from aiohttp.test_utils import TestClient, TestServer

    from conveyor.adapters.postgres import PostgresRecordStore, migrate
    from conveyor.ui import make_app
    from conveyor.ui._waiting import PAUSED_SHOWN

    dsn = service("postgres.sh", "CONVEYOR_PG_DSN")
    await migrate(dsn)
    workflow = f"bench-ui-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    run_ids = await fill(dsn, workflow, args.runs)
    fill_s = time.perf_counter() - started
    store = PostgresRecordStore(dsn)
    await store.open()
    # The workflow's spec, so the workflow page has its graph and the run page its path (statuses 1 to 4, as filled).
    spec = builder(workflow, 1).spec()
    client: TestClient[Any, Any] = TestClient(TestServer(make_app(store, workflows=[spec])))
    await client.start_server()
    deep_index = int(args.runs * 0.9)
    # Newest first, as the UI lists: the run at 90% of the way down is an old one.
    deep_cursor = run_ids[args.runs - 1 - deep_index]
    paused = RecordFilter(run_states=[RunState.PAUSED])
    paused_ids = [r for i, r in enumerate(run_ids) if state_of(i) is RunState.PAUSED]
    deep_paused_cursor = paused_ids[len(paused_ids) // 10]
    desc = SortOrder.DESCENDING

    async def get(url: str) -> None:
        response = await client.get(url)
        assert response.status == 200, await response.text()
        await response.read()

    async def http(query: str) -> None:
        await get(f"/api/runs?workflow={workflow}&{query}")

    async def waiting() -> None:
        # What the workflow page reads (conveyor.ui._context.Context.waiting).
        await store.count_active(workflow)
        await store.list(workflow, limit=PAUSED_SHOWN, order=desc, filter=paused)

    async def run_and_history() -> None:
        # What a run's page reads: the run, and its history for the path it took.
        await store.lookup(deep_cursor)
        await store.history(deep_cursor)

    cases: dict[str, Callable[[], Awaitable[Any]]] = {
        "first page": lambda: store.list(workflow, limit=PAGE, order=desc),
        "deep page, keyset (90%)": lambda: store.list(workflow, limit=PAGE, order=desc, after=deep_cursor),
        "deep page, offset (90%)": lambda: store.list(workflow, limit=PAGE, order=desc, offset=deep_index),
        "paused, first page": lambda: store.list(workflow, limit=PAGE, order=desc, filter=paused),
        "paused, deep keyset page": lambda: store.list(
            workflow, limit=PAGE, order=desc, filter=paused, after=deep_paused_cursor
        ),
        "status 2, first page": lambda: store.list(workflow, limit=PAGE, order=desc, filter=RecordFilter(statuses=[2])),
        "status 2 + running": lambda: store.list(
            workflow, limit=PAGE, order=desc, filter=RecordFilter(statuses=[2], run_states=[RunState.RUNNING])
        ),
        "one foreign id": lambda: store.list(
            workflow, limit=PAGE, order=desc, filter=RecordFilter(foreign_ids=[f"order-{args.runs // 2}"])
        ),
        "every workflow, paused": lambda: store.list(None, limit=PAGE, order=desc, filter=paused),
        "every workflow, one foreign id": lambda: store.list(
            None, limit=PAGE, order=desc, filter=RecordFilter(foreign_ids=[f"order-{args.runs // 2}"])
        ),
        # No index leads with these: the worst case, a scan of the whole table in creation order.
        "every workflow, no match": lambda: store.list(
            None, limit=PAGE, order=desc, filter=RecordFilter(run_states=[RunState.DATA_DELETED], statuses=[99])
        ),
        "HTTP first page": lambda: http(f"limit={PAGE}"),
        "HTTP deep page (keyset)": lambda: http(f"limit={PAGE}&cursor={deep_cursor}"),
        "HTTP paused, deep page": lambda: http(f"limit={PAGE}&run_state=PAUSED&cursor={deep_paused_cursor}"),
        "workflow: count_active": lambda: store.count_active(workflow),
        "workflow: count_active + paused": waiting,
        "HTTP workflow page": lambda: get(f"/workflows/{workflow}"),
        "HTTP workflow API": lambda: get(f"/api/workflows/{workflow}"),
        "run: lookup + history": run_and_history,
        "HTTP run page": lambda: get(f"/runs/{deep_cursor}"),
        "HTTP run API": lambda: get(f"/api/runs/{deep_cursor}"),
    }
    try:
        results = {name: await timed(fn, args.repeat) for name, fn in cases.items()}
    finally:
        await client.close()
        await store.close()
        if not args.keep:
            await remove(dsn, workflow)
    print(json.dumps({"bench": "ui_paging", "runs": args.runs, "fill_s": round(fill_s, 2), "median_ms": results}))
    width = max(len(name) for name in results)
    print(f"\n{args.runs} runs filled in {fill_s:.1f} s; median of {args.repeat}, page of {PAGE}:")
    for name, ms in results.items():
        print(f"  {name:<{width}}  {ms:8.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
