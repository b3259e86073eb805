"""The Postgres schema as versioned migrations, applied only by `conveyor db migrate` (or `migrate()`), under an
advisory lock, each in its own transaction, recorded in conveyor_migrations. Never run silently at start-up."""

from __future__ import annotations

from typing import Any

import psycopg

from conveyor.adapters.postgres._connect import connect, describe

# Every query of the engine and the UI has an index: lookups by run id (primary key), the latest run of a
# foreign id, lists by workflow in creation order with each filter, the outbox per workflow, due timeouts.
MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_runs_outbox_timeouts",
        """
CREATE TABLE conveyor_runs (
    run_id              text PRIMARY KEY,
    seq                 bigserial NOT NULL UNIQUE,
    workflow_name       text NOT NULL,
    foreign_id          text NOT NULL,
    run_state           smallint NOT NULL,
    status              integer NOT NULL,
    object              bytea,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    run_state_reason    text NOT NULL DEFAULT '',
    status_description  text NOT NULL DEFAULT '',
    version             bigint NOT NULL,
    trace_origin        text NOT NULL DEFAULT ''
);
-- One unfinished run (initiated, running, paused) per workflow and foreign id.
CREATE UNIQUE INDEX conveyor_runs_one_unfinished ON conveyor_runs (workflow_name, foreign_id)
    WHERE run_state IN (1, 2, 3);
CREATE INDEX conveyor_runs_latest ON conveyor_runs (workflow_name, foreign_id, seq DESC);
CREATE INDEX conveyor_runs_by_workflow ON conveyor_runs (workflow_name, seq);
CREATE INDEX conveyor_runs_by_run_state ON conveyor_runs (workflow_name, run_state, seq);
CREATE INDEX conveyor_runs_by_status ON conveyor_runs (workflow_name, status, seq);
CREATE INDEX conveyor_runs_by_created ON conveyor_runs (workflow_name, created_at);

CREATE TABLE conveyor_run_history (
    run_id              text NOT NULL,
    version             bigint NOT NULL,
    workflow_name       text NOT NULL,
    foreign_id          text NOT NULL,
    run_state           smallint NOT NULL,
    status              integer NOT NULL,
    object              bytea,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    run_state_reason    text NOT NULL DEFAULT '',
    status_description  text NOT NULL DEFAULT '',
    trace_origin        text NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, version)
);

CREATE TABLE conveyor_outbox (
    id                  bigserial PRIMARY KEY,
    workflow_name       text NOT NULL,
    data                bytea NOT NULL,
    created_at          timestamptz NOT NULL
);
CREATE INDEX conveyor_outbox_by_workflow ON conveyor_outbox (workflow_name, id);

CREATE TABLE conveyor_timeouts (
    id                  bigserial PRIMARY KEY,
    workflow_name       text NOT NULL,
    foreign_id          text NOT NULL,
    run_id              text NOT NULL,
    status              integer NOT NULL,
    timer               integer NOT NULL DEFAULT 0,
    record_version      bigint NOT NULL DEFAULT 0,
    expire_at           timestamptz NOT NULL,
    created_at          timestamptz NOT NULL,
    completed           boolean NOT NULL DEFAULT false,
    UNIQUE (workflow_name, run_id, status, timer, record_version)
);
CREATE INDEX conveyor_timeouts_due ON conveyor_timeouts (workflow_name, status, expire_at) WHERE NOT completed;
CREATE INDEX conveyor_timeouts_by_workflow ON conveyor_timeouts (workflow_name, id);
""",
    ),
    (
        # Support's most common question, "where is order-123?", asked across every workflow (the UI's and
        # `conveyor runs list --foreign-id` without a workflow): without it a scan of the whole table.
        "0002_runs_by_foreign_id",
        """
CREATE INDEX conveyor_runs_by_foreign_id ON conveyor_runs (foreign_id, seq);
""",
    ),
    (
        # Client.fork: where a forked run came from, kept on the run and each of its versions. And where runs
        # wait (the UI's workflow page, the stranded-runs check) is counted from the index of unfinished runs,
        # which now carries the status, run state and update time it counts: no index more for every
        # transition to keep, and the count reads active runs only, however many finished runs the table holds.
        "0003_forks_and_active_counts",
        """
ALTER TABLE conveyor_runs
    ADD COLUMN forked_from text NOT NULL DEFAULT '',
    ADD COLUMN forked_from_status integer NOT NULL DEFAULT 0;
ALTER TABLE conveyor_run_history
    ADD COLUMN forked_from text NOT NULL DEFAULT '',
    ADD COLUMN forked_from_status integer NOT NULL DEFAULT 0;
DROP INDEX conveyor_runs_one_unfinished;
CREATE UNIQUE INDEX conveyor_runs_one_unfinished ON conveyor_runs (workflow_name, foreign_id)
    INCLUDE (status, run_state, updated_at) WHERE run_state IN (1, 2, 3);
""",
    ),
]

LATEST = MIGRATIONS[-1][0]
_LOCK_KEY = 0x636F6E76  # "conv": serialises concurrent migrators


async def migrate(dsn: str) -> list[str]:
    """Apply the migrations not applied yet; returns their names (empty when the schema is up to date)."""
    applied: list[str] = []
    async with await connect(dsn, autocommit=True) as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS conveyor_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL)"
        )
        for name, sql in MIGRATIONS:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                cursor = await conn.execute("SELECT 1 FROM conveyor_migrations WHERE name = %s", (name,))
                if await cursor.fetchone() is not None:
                    continue
                await conn.execute(sql.encode())
                await conn.execute("INSERT INTO conveyor_migrations VALUES (%s, now())", (name,))
                applied.append(name)
    return applied


async def schema_is_current(conn: psycopg.AsyncConnection[Any]) -> bool:
    cursor = await conn.execute("SELECT to_regclass('conveyor_migrations') IS NOT NULL")
    row = await cursor.fetchone()
    if not row or not row[0]:
        return False
    cursor = await conn.execute("SELECT 1 FROM conveyor_migrations WHERE name = %s", (LATEST,))
    return await cursor.fetchone() is not None


__all__ = ["LATEST", "MIGRATIONS", "describe", "migrate", "schema_is_current"]
