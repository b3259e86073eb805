"""`conveyor db migrate`: its JSON output and exit codes (the migrations themselves are tested with the Postgres
adapter)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from conveyor.cli import cli
from tests.helpers import empty_database


def test_migrate_reports_what_it_applied_as_json(pg_dsn: str) -> None:
    with empty_database(pg_dsn, "conveyor_cli_migrate") as empty:
        first = CliRunner().invoke(cli, ["db", "migrate", "--dsn", empty, "--output", "json"])
        assert first.exit_code == 0, first.stderr
        assert json.loads(first.stdout) == {
            "applied": ["0001_runs_outbox_timeouts", "0002_runs_by_foreign_id", "0003_forks_and_active_counts"]
        }
        again = CliRunner().invoke(cli, ["db", "migrate", "--dsn", empty, "-o", "json"])
        assert json.loads(again.stdout) == {"applied": []}


def test_an_unreachable_database_exits_1_and_bad_usage_2() -> None:
    unreachable = CliRunner().invoke(cli, ["db", "migrate", "--dsn", "postgresql://bob:pw@127.0.0.1:9/x"])
    assert unreachable.exit_code == 1
    assert unreachable.stderr.startswith("Error: PostgreSQL at 127.0.0.1:9/x is unavailable")
    assert "pw@" not in unreachable.stderr
    bad = CliRunner().invoke(cli, ["db", "migrate", "--dsn", "postgresql://127.0.0.1:9/x", "--output", "yaml"])
    assert bad.exit_code == 2 and "'--output'" in bad.stderr
