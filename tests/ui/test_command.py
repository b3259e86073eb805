"""`conveyor ui` as a user runs it: serving a real Postgres store (and the demo) in a child process until SIGTERM,
and its usage errors (exit 2) and unreachable database or busy port (exit 1)."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from click.testing import CliRunner

from conveyor._core.records import Meta, Record
from conveyor._core.runstate import RunState
from conveyor.cli import cli
from tests.helpers import ROOT

PROGRAM = "import sys; from conveyor.cli import main; sys.exit(main())"


@asynccontextmanager
async def serving(*args: str, cwd: Path = ROOT) -> AsyncIterator[str]:
    """`conveyor ui ARGS` in a child process; yields its base URL, then stops it with SIGTERM and checks it
    exits 0."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PROGRAM,
        "ui",
        "--port",
        "0",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stderr is not None
        line = (await asyncio.wait_for(child.stdout.readline(), 60)).decode()
        if not line:
            pytest.fail(f"conveyor ui exited: {(await child.stderr.read()).decode()}")
        assert line.startswith("conveyor ui: http://127.0.0.1:"), line
        yield line.split()[2].rstrip("/")
    finally:
        if child.returncode is None:
            child.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(child.wait(), 30)
    assert code == 0


async def get_json(url: str) -> Any:
    def fetch() -> Any:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    return await asyncio.to_thread(fetch)


async def test_serves_a_postgres_store_with_status_names(pg_dsn: str) -> None:
    from conveyor.adapters.postgres import PostgresRecordStore

    store = PostgresRecordStore(pg_dsn)
    await store.open()
    foreign_id = f"cli-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    # Paused: a worker of order-processing that another test runs on this database leaves it alone.
    record = Record("order-processing", foreign_id, str(uuid.uuid4()), RunState.PAUSED, 2, b"{}", now, now, Meta())
    record.meta = Meta(version=1)
    await store.store(record)
    await store.close()
    entry = ("--path", "examples/order_processing", "--entrypoint", "orders.workflow:builder")
    async with serving("--dsn", pg_dsn, *entry) as base:
        body = await get_json(f"{base}/api/runs?workflow=order-processing&foreign_id={foreign_id}")
        assert isinstance(body, dict)
        [run] = body["runs"]
        assert (run["run_id"], run["status_name"], run["run_state"]) == (record.run_id, "PAID", "PAUSED")
        workflows = await get_json(f"{base}/api/workflows")
        assert isinstance(workflows, dict) and workflows["workflows"][0]["name"] == "order-processing"
        metrics = await asyncio.to_thread(lambda: urllib.request.urlopen(f"{base}/metrics", timeout=10).read())
        assert b"# HELP" in metrics


async def test_the_demo_serves_the_example_workflows_runs(tmp_path: Path) -> None:
    # From a directory outside the checkout: the demo finds the example workflow of the checkout it runs from.
    async with serving("--demo", cwd=tmp_path) as base:
        for _ in range(600):  # a bound for a loaded CI machine, not a speed claim
            body = await get_json(f"{base}/api/runs?limit=100&run_state=COMPLETED")
            assert isinstance(body, dict)
            if len(body["runs"]) == 60:
                break
            await asyncio.sleep(0.1)
        assert len(body["runs"]) == 60
        assert {r["workflow_name"] for r in body["runs"]} == {"order-processing"}
        assert {r["status_name"] for r in body["runs"]} >= {"FULFILLED", "REFUNDED", "CANCELLED"}


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["ui", *args], env={"CONVEYOR_PG_DSN": None})
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def test_usage_errors_exit_2_naming_the_option() -> None:
    code, output = run_cli()
    assert code == 2 and "--dsn" in output
    code, output = run_cli("--demo", "--dsn", "postgresql://x@127.0.0.1:1/db")
    assert code == 2 and "--demo" in output and "--dsn" in output
    code, output = run_cli("--demo", "--port", "70000")
    assert code == 2 and "--port" in output
    code, output = run_cli("--dsn", "postgresql://x@127.0.0.1:1/db", "--entrypoint", "nocolon")
    assert code == 2 and "Invalid value for '--entrypoint': 'nocolon': expected module:attribute" in output
    code, output = run_cli("--demo", "--entrypoint", "no_such_module:builder")
    assert code == 2 and "Invalid value for '--entrypoint': cannot import 'no_such_module'" in output
    code, output = run_cli("--demo", "--allowed-host", "http://ui.example.com")
    assert code == 2 and "--allowed-host" in output and "no scheme, port or path" in output
    # Checked before the store opens: an unreachable database does not hide the usage error (or make it exit 1).
    code, output = run_cli("--dsn", "postgresql://x@127.0.0.1:1/db", "--allowed-host", "ui.example.com:8080")
    assert code == 2
    assert "Invalid value for '--allowed-host': 'ui.example.com:8080': expected host names such as" in output


def test_an_entrypoint_that_fails_to_import_is_one_line(tmp_path: Path) -> None:
    module = f"raises_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text('raise ValueError("bad settings")\n')
    code, output = run_cli("--demo", "--entrypoint", f"{module}:builder", "--path", str(tmp_path))
    assert code == 2 and "Traceback" not in output
    assert f"'--entrypoint': {module}:builder: ValueError: bad settings ({tmp_path / module}.py, line 1)" in output


def test_an_unreachable_database_exits_1() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, output = run_cli("--dsn", f"postgresql://postgres@127.0.0.1:{port}/conveyor")
    assert code == 1
    assert f"127.0.0.1:{port}" in output


async def test_with_wait_for_store_it_serves_unready_until_the_database_answers(pg_dsn: str) -> None:
    import psycopg

    from conveyor.adapters.postgres import migrate

    # A database that does not exist yet, as while a cluster's Postgres is still being provisioned.
    name = f"ui_wait_{uuid.uuid4().hex[:8]}"
    dsn = urlparse(pg_dsn)._replace(path=f"/{name}").geturl()

    async def status(url: str) -> tuple[int, str]:
        def fetch() -> tuple[int, str]:
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    return response.status, response.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()

        return await asyncio.to_thread(fetch)

    try:
        async with serving("--dsn", dsn, "--wait-for-store") as base:
            assert await status(f"{base}/healthz") == (200, "ok\n")
            assert await status(f"{base}/readyz") == (503, "not ready: the record store is not open yet\n")
            code, body = await status(f"{base}/api/runs")
            assert (code, json.loads(body)) == (503, {"error": "the record store is not open yet"})

            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            await migrate(dsn)
            for _ in range(300):  # a bound for a loaded CI machine, not a speed claim
                if (await status(f"{base}/readyz"))[0] == 200:
                    break
                await asyncio.sleep(0.1)
            assert await status(f"{base}/readyz") == (200, "ready\n")
            code, body = await status(f"{base}/api/runs?limit=1")
            assert (code, json.loads(body)["runs"]) == (200, [])
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_a_busy_port_exits_1() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, output = run_cli("--demo", "--port", str(port))
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in output
