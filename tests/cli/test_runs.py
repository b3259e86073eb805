"""`conveyor runs ...` against a real Postgres: listing with filters and paging, showing, pausing, resuming,
cancelling and requesting deletion one run at a time and in bulk, and every error's message and exit code. Runs
are written to the store directly (in every run state a test needs) under the workflow of tests/cli/runs_app.py,
whose rows are cleared before each test."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from psycopg.conninfo import make_conninfo

from conveyor import RunState
from conveyor._core.records import Meta, Record
from conveyor.adapters.postgres import PostgresRecordStore
from conveyor.cli import _runs as runs_module
from conveyor.cli import cli
from tests.cli.runs_app import NAME, Parcel, ParcelStatus
from tests.helpers import CLI_APPS, CONVEYOR, empty_database

ENTRYPOINT = ["--entrypoint", "runs_app:builder", "--path", str(CLI_APPS)]


class Runs:
    """Writes and reads this module's runs straight through the Postgres record store."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def _with_store(self, fn: Any) -> Any:
        async def main() -> Any:
            store = PostgresRecordStore(self.dsn)
            await store.open()
            try:
                return await fn(store)
            finally:
                await store.close()

        return asyncio.run(main())

    def make(
        self,
        foreign_id: str,
        run_state: RunState = RunState.RUNNING,
        status: ParcelStatus = ParcelStatus.CREATED,
        *,
        obj: bytes | None = None,
        workflow: str = NAME,
    ) -> str:
        run_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        data = Parcel(id=foreign_id, weight_grams=1200).model_dump_json().encode() if obj is None else obj
        record = Record(workflow, foreign_id, run_id, run_state, int(status), data, now, now, Meta(version=1))

        async def store(s: PostgresRecordStore) -> None:
            await s.store(record)

        self._with_store(store)
        return run_id

    def get(self, run_id: str) -> Record:
        async def lookup(s: PostgresRecordStore) -> Record:
            return await s.lookup(run_id)

        record: Record = self._with_store(lookup)
        return record

    def history(self, run_id: str) -> list[Record]:
        async def history(s: PostgresRecordStore) -> list[Record]:
            return await s.history(run_id)

        found: list[Record] = self._with_store(history)
        return found

    def state(self, run_id: str) -> tuple[RunState, int]:
        record = self.get(run_id)
        return record.run_state, record.meta.version


@pytest.fixture
def runs(pg_dsn: str) -> Runs:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for table in ("conveyor_runs", "conveyor_run_history", "conveyor_outbox"):
            conn.execute(f"DELETE FROM {table} WHERE workflow_name = ANY(%s)", ([NAME, f"{NAME}-other"],))
    return Runs(pg_dsn)


def invoke(runs: Runs, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["runs", *args, "--dsn", runs.dsn], input=input)


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def listed(runs: Runs, *args: str) -> list[str]:
    """The foreign ids `runs list` gives, in its order."""
    return [r["foreign_id"] for r in as_json(invoke(runs, "list", "-o", "json", *args))["runs"]]


# --- list ----------------------------------------------------------------------------------------------------------


def test_list_shows_the_newest_first_with_status_names(runs: Runs) -> None:
    ids = [runs.make(f"p-{i}", status=ParcelStatus(i)) for i in (1, 2, 3)]

    table = invoke(runs, "list", "--workflow", NAME, *ENTRYPOINT)
    assert table.exit_code == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert re.split(r"\s{2,}", header) == [
        "RUN ID",
        "WORKFLOW",
        "FOREIGN ID",
        "STATUS",
        "RUN STATE",
        "CREATED (UTC)",
        "UPDATED (UTC)",
    ]
    assert [row.split()[:5] for row in rows] == [
        [ids[2], NAME, "p-3", "SHIPPED", "RUNNING"],
        [ids[1], NAME, "p-2", "PACKED", "RUNNING"],
        [ids[0], NAME, "p-1", "CREATED", "RUNNING"],
    ]
    # Columns line up: every row's foreign id starts where the header's does.
    column = header.index("FOREIGN ID")
    assert all(row[column:].startswith("p-") for row in rows)

    without_names = invoke(runs, "list", "--workflow", NAME)
    assert [row.split()[3] for row in without_names.stdout.splitlines()[1:]] == ["3", "2", "1"]

    page = as_json(invoke(runs, "list", "--workflow", NAME, "-o", "json", *ENTRYPOINT))
    assert page["offset"] == 0 and page["limit"] == 25 and page["next_offset"] is None
    first = page["runs"][0]
    # The keys of a run in the UI's JSON API too (tests/ui/test_api.py checks the same).
    assert set(first) == {
        "run_id",
        "workflow_name",
        "foreign_id",
        "status",
        "status_name",
        "run_state",
        "run_state_reason",
        "status_description",
        "version",
        "trace_origin",
        "forked_from",
        "created_at",
        "updated_at",
        "object",
        "object_encoding",
    }
    assert (first["object"], first["object_encoding"]) == ({"id": "p-3", "weight_grams": 1200}, "json")
    assert (first["run_id"], first["status"], first["status_name"], first["run_state"]) == (
        ids[2],
        3,
        "SHIPPED",
        "RUNNING",
    )
    assert datetime.fromisoformat(first["created_at"]).tzinfo is not None


def test_list_filters(runs: Runs) -> None:
    # The one foreign id listed across every workflow of the shared database: other modules' runs must not match.
    a = f"a-{uuid.uuid4().hex[:8]}"
    runs.make(a, RunState.RUNNING, ParcelStatus.CREATED)
    runs.make("b", RunState.PAUSED, ParcelStatus.PACKED)
    runs.make("c", RunState.COMPLETED, ParcelStatus.SHIPPED)
    runs.make("d", RunState.CANCELLED, ParcelStatus.PACKED)
    runs.make(a, RunState.PAUSED, ParcelStatus.PACKED, workflow=f"{NAME}-other")

    assert listed(runs, "--workflow", NAME) == ["d", "c", "b", a]
    assert listed(runs, "--workflow", f"{NAME}-other") == [a]
    assert listed(runs, "--workflow", NAME, "--run-state", "paused") == ["b"]
    assert listed(runs, "--workflow", NAME, "--run-state", "PAUSED", "--run-state", "Cancelled") == ["d", "b"]
    # The UI's spellings too: numbers, and several separated by commas.
    assert listed(runs, "--workflow", NAME, "--run-state", "3, cancelled") == ["d", "b"]
    assert listed(runs, "--workflow", NAME, "--status", "2") == ["d", "b"]
    assert listed(runs, "--workflow", NAME, "--foreign-id", a, "--foreign-id", "c") == ["c", a]
    assert listed(runs, "--foreign-id", a, "--run-state", "paused") == [a]  # both workflows, then one
    assert listed(runs, "--workflow", NAME, "--status", "packed", "--run-state", "paused", *ENTRYPOINT) == ["b"]
    assert listed(runs, "--workflow", NAME, "--status", "created,shipped", *ENTRYPOINT) == ["c", a]
    # A status name means something only in its own workflow: naming one lists that workflow's runs alone.
    assert listed(runs, "--status", "PACKED", *ENTRYPOINT) == ["d", "b"]


def test_list_pages(runs: Runs) -> None:
    ids = [runs.make(f"p-{i}") for i in range(5)]

    first = as_json(invoke(runs, "list", "--workflow", NAME, "--limit", "2", "-o", "json"))
    assert [r["foreign_id"] for r in first["runs"]] == ["p-4", "p-3"]
    assert (first["next_after"], first["next_offset"]) == (ids[3], 2)
    second = as_json(invoke(runs, "list", "--workflow", NAME, "--limit", "2", "--after", ids[3], "-o", "json"))
    assert [r["foreign_id"] for r in second["runs"]] == ["p-2", "p-1"]
    assert second["after"] == ids[3] and second["next_after"] == ids[1]
    last = as_json(invoke(runs, "list", "--workflow", NAME, "--limit", "2", "--after", ids[1], "-o", "json"))
    assert [r["foreign_id"] for r in last["runs"]] == ["p-0"]
    assert last["next_after"] is None and last["next_offset"] is None
    by_offset = as_json(invoke(runs, "list", "--workflow", NAME, "--limit", "2", "--offset", "2", "-o", "json"))
    assert [r["foreign_id"] for r in by_offset["runs"]] == ["p-2", "p-1"]
    assert listed(runs, "--workflow", NAME, "--oldest-first", "--limit", "3") == ["p-0", "p-1", "p-2"]
    assert listed(runs, "--workflow", NAME, "--oldest-first", "--after", ids[2]) == ["p-3", "p-4"]

    table = invoke(runs, "list", "--workflow", NAME, "--limit", "2")
    assert len(table.stdout.splitlines()) == 3
    assert table.stderr == f"more: next page with --after {ids[3]}\n"
    beyond = invoke(runs, "list", "--workflow", NAME, "--offset", "10")
    assert beyond.exit_code == 0 and beyond.stdout.strip() == "no more runs match"

    unknown = invoke(runs, "list", "--after", "no-such-run")
    assert unknown.exit_code == 2
    assert "Invalid value for '--after': 'no-such-run': expected the run id of a stored run" in unknown.stderr


# --- show ----------------------------------------------------------------------------------------------------------


def test_show_gives_the_record_its_object_and_history(runs: Runs) -> None:
    run_id = runs.make("p-1")
    assert invoke(runs, "pause", run_id, "--reason", "weighing it again").exit_code == 0

    shown = as_json(invoke(runs, "show", run_id, "-o", "json", *ENTRYPOINT))
    assert shown["run_id"] == run_id and shown["foreign_id"] == "p-1"
    assert shown["run_state"] == "PAUSED" and shown["run_state_reason"] == "weighing it again"
    assert shown["status_name"] == "CREATED" and shown["version"] == 2
    assert shown["object"] == {"id": "p-1", "weight_grams": 1200} and shown["object_encoding"] == "json"
    assert [(h["version"], h["run_state"], h["run_state_reason"]) for h in shown["history"]] == [
        (1, "RUNNING", ""),
        (2, "PAUSED", "weighing it again"),
    ]
    # Each version has the keys of the run itself (and of the UI's history).
    assert all(set(h) == set(shown) - {"history"} for h in shown["history"])
    assert all(datetime.fromisoformat(h["updated_at"]) for h in shown["history"])

    table = invoke(runs, "show", run_id, *ENTRYPOINT)
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["run", "id", run_id]
    assert ["run", "state", "PAUSED"] in [line.split() for line in lines]
    assert ["reason", "weighing", "it", "again"] in [line.split() for line in lines]
    assert '  "weight_grams": 1200' in lines
    history = lines[lines.index("history:") + 1 :]
    assert history[0].split() == ["VERSION", "STATUS", "RUN", "STATE", "REASON", "AT", "(UTC)"]
    assert [row.split()[:3] for row in history[1:]] == [["1", "CREATED", "RUNNING"], ["2", "CREATED", "PAUSED"]]


def test_user_text_is_shown_as_stored(runs: Runs) -> None:
    odd = "[red]p-1[/] :smile: \x1b[31m"
    run_id = runs.make(odd)
    assert invoke(runs, "pause", run_id, "--reason", "[/bold] :x:").exit_code == 0
    assert runs.get(run_id).meta.run_state_reason == "[/bold] :x:"
    listing = invoke(runs, "list", "--workflow", NAME)
    assert listing.exit_code == 0, listing.stderr
    assert "[red]p-1[/] :smile:" in listing.stdout
    shown = invoke(runs, "show", run_id)
    assert "[/bold] :x:" in shown.stdout and "[red]p-1[/] :smile:" in shown.stdout

    # Piped output is never cropped to a width: a long foreign id stays whole on its row, for grep.
    long_id = "long-" + "x" * 700 + "-end"
    long_run = runs.make(long_id)
    rows = invoke(runs, "list", "--workflow", NAME, "--foreign-id", long_id).stdout.splitlines()
    assert rows[1].split()[:3] == [long_run, NAME, long_id]


def test_show_an_object_that_is_not_json_or_deleted(runs: Runs) -> None:
    raw = runs.make("p-raw", obj=b"\x00\xffnot json")
    shown = as_json(invoke(runs, "show", raw, "-o", "json"))
    assert shown["object_encoding"] == "base64" and shown["object"] == "AP9ub3QganNvbg=="
    assert shown["status_name"] is None
    assert "object (not JSON; base64): AP9ub3QganNvbg==" in invoke(runs, "show", raw).stdout

    # Text that is not JSON is shown as the text, as the UI shows it.
    text = runs.make("p-text", obj="plain wörds".encode())
    shown = as_json(invoke(runs, "show", text, "-o", "json"))
    assert (shown["object"], shown["object_encoding"]) == ("plain wörds", "text")
    assert "object (not JSON; text): plain wörds" in invoke(runs, "show", text).stdout

    deleted = runs.make("p-deleted", RunState.DATA_DELETED)
    with psycopg.connect(runs.dsn, autocommit=True) as conn:
        conn.execute("UPDATE conveyor_runs SET object = NULL WHERE run_id = %s", (deleted,))
    shown = as_json(invoke(runs, "show", deleted, "-o", "json"))
    assert shown["object"] is None and shown["object_encoding"] is None
    assert "object: deleted" in invoke(runs, "show", deleted).stdout


def test_showing_an_unknown_run_exits_3(runs: Runs) -> None:
    result = invoke(runs, "show", "no-such-run")
    assert result.exit_code == 3
    assert result.stderr.strip() == "Error: run 'no-such-run' not found"
    assert result.stdout == ""


# --- pause, resume, cancel, delete ---------------------------------------------------------------------------------


def test_pause_resume_cancel_and_delete_one_run(runs: Runs) -> None:
    run_id = runs.make("p-1")

    paused = invoke(runs, "pause", run_id, "--reason", "customs", *ENTRYPOINT)
    assert paused.exit_code == 0, paused.stderr
    assert paused.stdout.splitlines()[1].split() == [run_id, NAME, "p-1", "CREATED", "PAUSED", "paused"]
    assert runs.get(run_id).meta.run_state_reason == "customs"

    resumed = as_json(invoke(runs, "resume", run_id, "-o", "json"))
    assert resumed["action"] == "resume"
    assert resumed["summary"] == {"done": 1, "not_found": 0, "refused": 0, "failed": 0}
    [result] = resumed["results"]
    assert (result["run_id"], result["result"], result["run"]["run_state"]) == (run_id, "done", "RUNNING")

    assert invoke(runs, "cancel", run_id, "--reason", "lost").exit_code == 0
    assert runs.get(run_id).run_state is RunState.CANCELLED
    assert invoke(runs, "delete", run_id).exit_code == 0
    assert [h.run_state for h in runs.history(run_id)] == [
        RunState.RUNNING,
        RunState.PAUSED,
        RunState.RUNNING,
        RunState.CANCELLED,
        RunState.REQUESTED_DATA_DELETED,
    ]


def test_a_refused_change_exits_4_and_leaves_the_run_as_it_was(runs: Runs) -> None:
    run_id = runs.make("p-1", RunState.COMPLETED, ParcelStatus.SHIPPED)
    before = runs.state(run_id)

    result = invoke(runs, "resume", run_id)
    assert result.exit_code == 4
    assert result.stderr.strip() == f"Error: run {run_id}: cannot move from COMPLETED to RUNNING"
    assert runs.state(run_id) == before
    assert len(runs.history(run_id)) == 1

    as_json_out = invoke(runs, "pause", run_id, "-o", "json")
    assert as_json_out.exit_code == 4
    [outcome] = json.loads(as_json_out.stdout)["results"]
    assert outcome["result"] == "refused" and outcome["run"] is None
    assert runs.state(run_id) == before


def test_an_unknown_run_exits_3(runs: Runs) -> None:
    result = invoke(runs, "cancel", "no-such-run")
    assert result.exit_code == 3
    assert result.stderr.strip() == "Error: run 'no-such-run' not found"


def test_several_runs_report_each_failure_and_exit_with_the_most_serious(runs: Runs) -> None:
    ok = runs.make("p-ok")
    done = runs.make("p-done", RunState.COMPLETED, ParcelStatus.SHIPPED)
    before = runs.state(done)

    result = invoke(runs, "pause", ok, done, "missing-run")
    assert result.exit_code == 4
    assert [row.split()[0] for row in result.stdout.splitlines()[1:]] == [ok]
    errors = result.stderr.splitlines()
    assert f"Error: run {done}: cannot move from COMPLETED to PAUSED" in errors
    assert "Error: run 'missing-run' not found" in errors
    assert errors[-1] == "pause: 2 of 3 runs not changed (1 refused, 1 not found)"
    assert runs.get(ok).run_state is RunState.PAUSED
    assert runs.state(done) == before

    only_missing = invoke(runs, "pause", "missing-1", "missing-2")
    assert only_missing.exit_code == 3


def test_bulk_cancel_acts_on_every_match_with_a_progress_bar(runs: Runs, monkeypatch: pytest.MonkeyPatch) -> None:
    # Matches are read a page at a time before anything changes: small pages make this read several.
    monkeypatch.setattr(runs_module, "_PAGE", 3)
    paused = [runs.make(f"p-{i}", RunState.PAUSED) for i in range(7)]
    running = runs.make("p-running")

    result = invoke(runs, "cancel", "--workflow", NAME, "--run-state", "paused", "--reason", "recall", "--yes")
    assert result.exit_code == 0, result.stderr
    assert sorted(row.split()[0] for row in result.stdout.splitlines()[1:]) == sorted(paused)
    # The progress bar goes to stderr (stdout stays the table), finished.
    assert "cancel" in result.stderr and "7/7" in result.stderr
    assert all(runs.get(r).run_state is RunState.CANCELLED for r in paused)
    assert {runs.get(r).meta.run_state_reason for r in paused} == {"recall"}
    assert runs.get(running).run_state is RunState.RUNNING

    nothing = invoke(runs, "cancel", "--workflow", NAME, "--run-state", "paused", "--yes")
    assert nothing.exit_code == 0 and nothing.stdout.strip() == "no runs match: nothing changed"


def test_bulk_asks_first_and_a_no_changes_nothing(runs: Runs) -> None:
    ids = [runs.make(f"p-{i}") for i in range(3)]

    declined = invoke(runs, "pause", "--workflow", NAME, input="n\n")
    assert declined.exit_code == 1
    assert "pause 3 runs? [y/N]" in declined.stderr
    assert "declined: nothing changed" in declined.stderr
    assert all(runs.state(r) == (RunState.RUNNING, 1) for r in ids)

    accepted = as_json(invoke(runs, "pause", "--workflow", NAME, "--foreign-id", "p-0", "-o", "json", input="y\n"))
    assert [r["run_id"] for r in accepted["results"]] == [ids[0]]
    assert runs.get(ids[0]).run_state is RunState.PAUSED
    assert runs.get(ids[1]).run_state is RunState.RUNNING


def test_bulk_with_refusals_exits_4_and_lists_them(runs: Runs) -> None:
    paused = runs.make("p-paused", RunState.PAUSED)
    completed = runs.make("p-completed", RunState.COMPLETED, ParcelStatus.SHIPPED)

    result = invoke(runs, "resume", "--workflow", NAME, "--yes", "-o", "json")
    assert result.exit_code == 4
    outcomes = {r["run_id"]: r["result"] for r in json.loads(result.stdout)["results"]}
    assert outcomes == {paused: "done", completed: "refused"}
    assert "resume: 1 of 2 runs not changed (1 refused)" in result.stderr
    assert runs.state(completed) == (RunState.COMPLETED, 1)


def test_bulk_by_status_name(runs: Runs) -> None:
    packed = runs.make("p-packed", RunState.RUNNING, ParcelStatus.PACKED)
    created = runs.make("p-created", RunState.RUNNING, ParcelStatus.CREATED)

    result = invoke(runs, "pause", "--status", "PACKED", "--yes", *ENTRYPOINT)
    assert result.exit_code == 0, result.stderr
    assert runs.get(packed).run_state is RunState.PAUSED
    assert runs.get(created).run_state is RunState.RUNNING


# --- bad input -----------------------------------------------------------------------------------------------------


def test_bad_arguments_exit_2_naming_them_and_change_nothing(runs: Runs) -> None:
    run_id = runs.make("p-1")
    before = runs.state(run_id)
    for args, message in [
        (["list", "--run-state", "sleeping"], "'--run-state': 'sleeping': expected a run state (INITIATED, RUNNING"),
        (["pause", "--run-state", "nope", "--yes"], "'--run-state': 'nope': expected a run state"),
        (["list", "--run-state", "unknown"], "'--run-state': 'unknown': expected a run state (INITIATED,"),
        (["list", "--run-state", "8"], "'--run-state': '8': expected an integer from 1 to 7"),
        (["list", "--status", "PACKED"], "'--status': 'PACKED' is a status name: give the workflow's --entrypoint"),
        (["pause", "--status", "PACKED", "--yes"], "'--status': 'PACKED' is a status name"),
        (["list", "--status", "LOST", *ENTRYPOINT], "'LOST': expected a status number or a status of cli-runs"),
        (["list", "--status", "0"], "'--status': '0': expected an integer from 1 to 2147483647"),
        (["list", "--status", "-5"], "'--status': '-5': expected an integer from 1 to 2147483647"),
        # Past the store's integer column: refused here, not a database failure (exit 1).
        (["list", "--status", "99999999999"], "'--status': '99999999999': expected an integer from 1 to 2147483647"),
        (
            ["list", "--status", "1.5", *ENTRYPOINT],
            "'--status': '1.5': expected a status number from 1 to 2147483647 or",
        ),
        # A value given on purpose but empty is a mistake (an unset shell variable), never "any": with --workflow it
        # would make a bulk action act on every run of the workflow.
        (["pause", "--workflow", NAME, "--status", " ", "--yes"], "'--status': ' ': expected a status number"),
        (["pause", "--workflow", NAME, "--run-state", ",", "--yes"], "'--run-state': ',': expected a run state"),
        (["pause", "--workflow", "", "--yes"], "'--workflow' / '-w': '': expected a value that is not empty"),
        (["list", "--after", ""], "'--after': '': expected a value that is not empty"),
        (["show", ""], "'RUN_ID': '': expected a value that is not empty"),
        (["resume", run_id, " "], "'[RUN_IDS]...': ' ': expected a value that is not empty"),
        (["list", "--offset", str(2**63)], "'--offset'"),
        # Text the store cannot hold (a NUL would fail in the driver, exit 1): bad usage naming the option.
        (["list", "--foreign-id", "a\x00b"], "'--foreign-id': 'a\\x00b': expected text without control characters"),
        (["list", "--workflow", "w" * 257], "'-w': a value of 257 characters: expected at most 256 characters"),
        (["list", "--after", "run\x01"], "'--after': 'run\\x01': expected text without control characters"),
        (["show", "run\x00"], "'RUN_ID': 'run\\x00': expected text without control characters"),
        (["cancel", run_id, "run\x00"], "'[RUN_IDS]...': 'run\\x00': expected text without control characters"),
        (["pause", run_id, "--reason", "bell\x07"], "'--reason': 'bell\\x07': expected text without control"),
        (["list", "--workflow", "other", "--status", "PACKED", *ENTRYPOINT], "is not among the --entrypoint workflows"),
        (["list", "--limit", "0"], "'--limit'"),
        (["list", "--offset", "-1"], "'--offset'"),
        (["list", "--output", "yaml"], "'--output'"),
        (["list", "--entrypoint", "runs_app"], "'--entrypoint': 'runs_app': expected module:attribute"),
        (["pause"], "give RUN_IDs, or filters"),
        (["pause", run_id, "--workflow", NAME], "give RUN_IDs or filters"),
        (["pause", run_id, "--reason", "x" * 1025], "'--reason': a value of 1025 characters: expected at most 1024"),
        (["show"], "Missing argument 'RUN_ID'"),
    ]:
        result = invoke(runs, *args)
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert runs.state(run_id) == before


def test_an_entrypoint_whose_code_fails_is_one_line_naming_where(runs: Runs, tmp_path: Path) -> None:
    """The user's module raising as it is imported, or not parsing, is bad usage told in one line with its file and
    line, never a traceback through conveyor."""
    tag = uuid.uuid4().hex[:8]
    (tmp_path / f"raises_{tag}.py").write_text('import os\n\nraise RuntimeError("no\\nconfig")\n')
    (tmp_path / f"unparsed_{tag}.py").write_text("def f(:\n")
    for module, message in (
        (f"raises_{tag}", f"RuntimeError: no config ({tmp_path / f'raises_{tag}.py'}, line 3)"),
        (f"unparsed_{tag}", f"SyntaxError: invalid syntax ({tmp_path / f'unparsed_{tag}.py'}, line 1)"),
    ):
        result = invoke(runs, "list", "--entrypoint", f"{module}:builder", "--path", str(tmp_path))
        assert result.exit_code == 2, result.stderr
        assert f"Invalid value for '--entrypoint': {module}:builder: {message}" in result.stderr
        assert "Traceback" not in result.stderr


def test_an_unreachable_database_exits_1_with_its_address() -> None:
    for args in (["list"], ["show", "r-1"], ["pause", "r-1"], ["cancel", "--workflow", "w", "--yes"]):
        result = CliRunner().invoke(cli, ["runs", *args, "--dsn", "postgresql://bob:s3cret@127.0.0.1:9/conveyor"])
        assert result.exit_code == 1, (args, result.stderr)
        assert "PostgreSQL at 127.0.0.1:9/conveyor is unavailable" in result.stderr
        assert "s3cret" not in result.stderr


def test_a_database_that_refuses_the_write_exits_1_and_changes_nothing(runs: Runs) -> None:
    """A role that may read but not write: the reading commands work, every change fails as the service's failure
    (exit 1, the database's reason per run), and no run changes."""
    role = f"conveyor_cli_ro_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(runs.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    read_only = Runs(make_conninfo(runs.dsn, user=role))
    try:
        ids = [runs.make(f"p-{i}") for i in range(2)]
        assert listed(read_only, "--workflow", NAME) == ["p-1", "p-0"]

        one = invoke(read_only, "pause", ids[0])
        assert one.exit_code == 1
        assert one.stderr == f"Error: run {ids[0]}: permission denied for table conveyor_runs\n"

        bulk = invoke(read_only, "pause", "--workflow", NAME, "--yes", "-o", "json")
        assert bulk.exit_code == 1
        assert json.loads(bulk.stdout)["summary"] == {"done": 0, "not_found": 0, "refused": 0, "failed": 2}
        assert bulk.stderr.splitlines()[-1] == "pause: 2 of 2 runs not changed (2 failed)"
        assert [runs.state(r) for r in ids] == [(RunState.RUNNING, 1)] * 2
    finally:
        with psycopg.connect(runs.dsn, autocommit=True) as conn:
            conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
            conn.execute(f"DROP ROLE {role}")


def test_a_malformed_dsn_exits_1_and_an_empty_one_2() -> None:
    malformed = CliRunner().invoke(cli, ["runs", "list", "--dsn", "nonsense"])
    assert malformed.exit_code == 1
    assert "the DSN is not valid" in malformed.stderr
    empty = CliRunner().invoke(cli, ["runs", "show", "r-1", "--dsn", " "])
    assert empty.exit_code == 2
    assert "--dsn" in empty.stderr and "expected a PostgreSQL connection string" in empty.stderr


def test_a_database_without_the_schema_exits_1_saying_to_migrate(pg_dsn: str) -> None:
    with empty_database(pg_dsn, "conveyor_cli_empty") as empty:
        result = CliRunner().invoke(cli, ["runs", "list", "--dsn", empty])
        assert result.exit_code == 1
        assert "run `conveyor db migrate`" in result.stderr


# --- the installed script ------------------------------------------------------------------------------------------


def script(*args: str, dsn: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CONVEYOR), "runs", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CONVEYOR_PG_DSN": dsn},
    )


def test_the_installed_script(runs: Runs) -> None:
    paused = runs.make("p-paused", RunState.PAUSED)
    completed = runs.make("p-completed", RunState.COMPLETED, ParcelStatus.SHIPPED)

    listing = script("list", "--workflow", NAME, "-o", "json", *ENTRYPOINT, dsn=runs.dsn)
    assert listing.returncode == 0, listing.stderr
    assert [(r["foreign_id"], r["status_name"]) for r in json.loads(listing.stdout)["runs"]] == [
        ("p-completed", "SHIPPED"),
        ("p-paused", "CREATED"),
    ]

    resumed = script("resume", paused, dsn=runs.dsn)
    assert resumed.returncode == 0, resumed.stderr
    assert runs.get(paused).run_state is RunState.RUNNING

    refused = script("resume", completed, dsn=runs.dsn)
    assert refused.returncode == 4
    assert refused.stderr == f"Error: run {completed}: cannot move from COMPLETED to RUNNING\n"

    missing = script("show", "no-such-run", dsn=runs.dsn)
    assert (missing.returncode, missing.stderr) == (3, "Error: run 'no-such-run' not found\n")

    unreachable = script("list", dsn="postgresql://127.0.0.1:9/conveyor")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("Error: PostgreSQL at 127.0.0.1:9/conveyor is unavailable")

    usage = script("list", "--run-state", "asleep", dsn=runs.dsn)
    assert usage.returncode == 2 and "'--run-state': 'asleep': expected a run state" in usage.stderr

    helped = script("--help", dsn=runs.dsn)
    assert "Exit codes:" in helped.stdout and "4  a state change was refused" in helped.stdout
    # The spellings --run-state takes, as it reads them (numbers included).
    options = " ".join(script("list", "--help", dsn=runs.dsn).stdout.split())
    assert "requested_data_deleted, in any case, or its number (1 to 7)" in options


def _advance(runs: Runs, run_id: str, status: ParcelStatus, run_state: RunState, reason: str = "") -> None:
    """Store the run's next version at `status` in `run_state`, as a worker would."""
    before = runs.get(run_id)
    after = Record(
        before.workflow_name,
        before.foreign_id,
        run_id,
        run_state,
        int(status),
        before.object,
        before.created_at,
        datetime.now(UTC),
        Meta(run_state_reason=reason, status_description=status.name, version=before.meta.version + 1),
    )

    async def store(s: PostgresRecordStore) -> None:
        await s.store(after, expected_version=before.meta.version)

    runs._with_store(store)


def test_fork_starts_a_new_run_where_a_paused_one_stopped(runs: Runs) -> None:
    run_id = runs.make("p-fork")
    _advance(runs, run_id, ParcelStatus.PACKED, RunState.PAUSED, "carrier API down")
    out = as_json(invoke(runs, "fork", run_id, "-o", "json", *ENTRYPOINT))
    new = out["run"]
    assert (new["foreign_id"], new["status_name"], new["run_state"]) == ("p-fork", "PACKED", "INITIATED")
    assert new["forked_from"] == {"run_id": run_id, "status": 2, "status_name": "PACKED"}
    assert new["object"] == {"id": "p-fork", "weight_grams": 1200}
    assert out["forked_from"]["run_state"] == "CANCELLED"
    assert out["forked_from"]["run_state_reason"] == f"forked to {new['run_id']}"
    assert runs.get(run_id).run_state is RunState.CANCELLED

    shown = invoke(runs, "show", new["run_id"], *ENTRYPOINT)
    assert shown.exit_code == 0, shown.stderr
    assert re.search(rf"forked from\s+│?\s*{run_id} at PACKED", shown.stdout), shown.stdout
    assert as_json(invoke(runs, "show", new["run_id"], "-o", "json"))["forked_from"]["run_id"] == run_id
    assert as_json(invoke(runs, "show", run_id, "-o", "json"))["forked_from"] is None


def test_fork_at_an_earlier_status_with_a_replacement_object(runs: Runs, tmp_path: Path) -> None:
    run_id = runs.make("p-fork-2")
    _advance(runs, run_id, ParcelStatus.PACKED, RunState.CANCELLED, "wrong box")
    replacement = tmp_path / "parcel.json"
    replacement.write_text(json.dumps({"id": "p-fork-2", "weight_grams": 900}))
    result = invoke(runs, "fork", run_id, "--status", "created", "--object-file", str(replacement), *ENTRYPOINT)
    assert result.exit_code == 0, result.stderr
    assert "CREATED" in result.stdout and f"{run_id} (cancelled)" in result.stdout
    [new] = [
        r for r in as_json(invoke(runs, "list", "-o", "json", "--workflow", NAME))["runs"] if r["run_id"] != run_id
    ]
    assert (new["status"], new["object"]["weight_grams"]) == (1, 900)


def test_fork_refusals_name_what_is_wrong_and_change_nothing(runs: Runs, tmp_path: Path) -> None:
    active = runs.make("p-active")
    result = invoke(runs, "fork", active, *ENTRYPOINT)
    assert result.exit_code == runs_module.EXIT_REFUSED
    assert "cannot be forked: it is RUNNING, still active" in result.stderr

    stopped = runs.make("p-stopped", RunState.CANCELLED)
    never = invoke(runs, "fork", stopped, "--status", "SHIPPED", *ENTRYPOINT)
    assert never.exit_code == 2 and "'--status'" in never.stderr and "reached (CREATED)" in never.stderr
    unknown = invoke(runs, "fork", stopped, "--status", "LOST", *ENTRYPOINT)
    assert unknown.exit_code == 2 and "'--status'" in unknown.stderr

    not_json = tmp_path / "not.json"
    not_json.write_text("{weight: heavy")
    bad = invoke(runs, "fork", stopped, "--object-file", str(not_json), *ENTRYPOINT)
    assert bad.exit_code == 2 and "'--object-file'" in bad.stderr and "not JSON" in bad.stderr
    wrong_type = tmp_path / "wrong.json"
    wrong_type.write_text(json.dumps({"weight_grams": "heavy"}))
    bad = invoke(runs, "fork", stopped, "--object-file", str(wrong_type), *ENTRYPOINT)
    assert bad.exit_code == 2 and "'--object-file'" in bad.stderr and "weight_grams" in bad.stderr

    codeless = invoke(runs, "fork", stopped)
    assert codeless.exit_code == 2 and "--entrypoint" in codeless.stderr
    missing = invoke(runs, "fork", str(uuid.uuid4()), *ENTRYPOINT)
    assert missing.exit_code == runs_module.EXIT_NOT_FOUND

    deleted = runs.make("p-deleted", RunState.DATA_DELETED, obj=b"{}")
    gone = invoke(runs, "fork", deleted, *ENTRYPOINT)
    assert gone.exit_code == runs_module.EXIT_REFUSED and "data was deleted" in gone.stderr
    assert len(as_json(invoke(runs, "list", "-o", "json", "--workflow", NAME))["runs"]) == 3  # nothing was written
