"""`conveyor db migrate`: its JSON output and exit codes (the migrations themselves are tested with the Postgres
adapter)."""

from __future__ import annotations

import json
import uuid

import psycopg
from click.testing import CliRunner

from conveyor.cli import cli


def test_migrate_reports_what_it_applied_as_json(pg_dsn: str) -> None:
    name = f"conveyor_cli_migrate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        empty = pg_dsn.rsplit("/", 1)[0] + f"/{name}"
        first = CliRunner().invoke(cli, ["db", "migrate", "--dsn", empty, "--output", "json"])
        assert first.exit_code == 0, first.stderr
        assert json.loads(first.stdout) == {"applied": ["0001_runs_outbox_timeouts", "0002_runs_by_foreign_id"]}
        again = CliRunner().invoke(cli, ["db", "migrate", "--dsn", empty, "-o", "json"])
        assert json.loads(again.stdout) == {"applied": []}
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_an_unreachable_database_exits_1_and_bad_usage_2() -> None:
    unreachable = CliRunner().invoke(cli, ["db", "migrate", "--dsn", "postgresql://bob:pw@127.0.0.1:9/x"])
    assert unreachable.exit_code == 1
    assert unreachable.stderr.startswith("Error: PostgreSQL at 127.0.0.1:9/x is unavailable")
    assert "pw@" not in unreachable.stderr
    bad = CliRunner().invoke(cli, ["db", "migrate", "--dsn", "postgresql://127.0.0.1:9/x", "--output", "yaml"])
    assert bad.exit_code == 2 and "'--output'" in bad.stderr
