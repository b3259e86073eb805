"""Fixtures of the UI tests: a record store (memory, and real Postgres through `pg_dsn`) holding runs of a small
workflow of the test's own, the UI app over it behind aiohttp's test server, and Debian's chromium for the browser
tests (installed by scripts/chromium.sh when missing)."""

from __future__ import annotations

import contextlib
import enum
import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import CookieJar, web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel

from conveyor import Builder, Run
from conveyor._core.ports import RecordStore
from conveyor._core.records import Meta, Record
from conveyor._core.runstate import RunState
from conveyor._engine.spec import WorkflowSpec
from conveyor.adapters.memory import MemoryRecordStore
from conveyor.testing import FakeClock
from conveyor.ui import make_app
from tests.helpers import ROOT
from tests.services import unavailable


class Parcel(BaseModel):
    id: str = ""
    note: str = ""


class Stage(enum.IntEnum):
    RECEIVED = 1
    CHECKED = 2
    SHIPPED = 3
    REJECTED = 4


def _check(run: Run[Parcel, Stage]) -> Stage:
    return Stage.CHECKED


def _ship(run: Run[Parcel, Stage]) -> Stage:
    return Stage.SHIPPED


def make_spec(name: str) -> WorkflowSpec[Parcel, Stage]:
    b = Builder(name, Parcel, Stage)
    b.add_step(Stage.RECEIVED, _check, Stage.CHECKED, Stage.REJECTED)
    b.add_step(Stage.CHECKED, _ship, Stage.SHIPPED)
    return b.spec()


class Runs:
    """Runs of one workflow (named uniquely per test, so tests sharing a database never see each other's runs),
    written straight through the record store as the engine would have written them."""

    def __init__(self, store: RecordStore) -> None:
        self.store = store
        self.workflow = f"parcels-{uuid.uuid4().hex[:10]}"
        self.spec = make_spec(self.workflow)
        self.base = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        self.made = 0

    async def make(
        self,
        foreign_id: str,
        *,
        status: int = Stage.RECEIVED,
        run_state: RunState = RunState.RUNNING,
        obj: bytes | Any | None = ...,
        workflow: str | None = None,
        run_id: str | None = None,
    ) -> Record:
        self.made += 1
        when = self.base + timedelta(seconds=self.made)
        raw = json.dumps({"id": foreign_id, "note": "n"}).encode() if obj is ... else obj
        record = Record(
            workflow or self.workflow,
            foreign_id,
            run_id or str(uuid.uuid4()),
            RunState.INITIATED,
            int(status),
            raw,
            when,
            when,
            Meta(version=1),
        )
        await self.store.store(record)
        # The history a real run has: initiated, then its current state.
        if run_state is not RunState.INITIATED:
            record = Record(
                record.workflow_name,
                foreign_id,
                record.run_id,
                run_state,
                int(status),
                raw,
                when,
                when + timedelta(milliseconds=5),
                Meta(version=2, run_state_reason="set by the test" if run_state is RunState.PAUSED else ""),
            )
            await self.store.store(record, expected_version=1)
        return record


@pytest.fixture(params=["memory", "postgres"])
def store_dsn(request: pytest.FixtureRequest) -> str | None:
    """None for the memory store, else the DSN of a migrated Postgres (resolved outside the event loop: the
    session fixture migrates with asyncio.run)."""
    if request.param == "memory":
        return None
    dsn: str = request.getfixturevalue("pg_dsn")
    return dsn


@pytest.fixture
async def store(store_dsn: str | None) -> AsyncIterator[RecordStore]:
    """Every API test runs on the memory store and on real Postgres."""
    if store_dsn is None:
        yield MemoryRecordStore()
        return
    from conveyor.adapters.postgres import PostgresRecordStore

    pg = PostgresRecordStore(store_dsn)
    await pg.open()
    yield pg
    await pg.close()


@pytest.fixture
def runs(store: RecordStore) -> Runs:
    return Runs(store)


class UI:
    """The app behind a test server, with a client that keeps the UI's cookie (127.0.0.1 needs an unsafe jar)."""

    def __init__(self, client: TestClient[web.Request, web.Application], runs: Runs) -> None:
        self.client = client
        self.runs = runs
        self.origin = str(client.make_url("")).rstrip("/")

    async def token(self) -> str:
        response = await self.client.get("/api/csrf")
        assert response.status == 200
        token: str = (await response.json())["token"]
        return token

    async def act(self, run_id: str, action: str, **kwargs: Any) -> Any:
        headers = {"Origin": self.origin, "X-CSRF-Token": await self.token()}
        headers.update(kwargs.pop("headers", {}))
        return await self.client.post(f"/api/runs/{run_id}/{action}", headers=headers, **kwargs)

    async def state(self, run_id: str) -> tuple[RunState, int]:
        record = await self.runs.store.lookup(run_id)
        return record.run_state, record.meta.version


async def open_ui(runs: Runs, *, allow_actions: bool) -> TestClient[web.Request, web.Application]:
    app = make_app(runs.store, workflows=[runs.spec], allow_actions=allow_actions, clock=FakeClock())
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app), cookie_jar=CookieJar(unsafe=True))
    await client.start_server()
    return client


@pytest.fixture
async def ui(runs: Runs) -> AsyncIterator[UI]:
    """The UI with actions enabled."""
    client = await open_ui(runs, allow_actions=True)
    yield UI(client, runs)
    await client.close()


@pytest.fixture
async def ui_readonly(runs: Runs) -> AsyncIterator[UI]:
    """The UI as it starts by default: actions disabled."""
    client = await open_ui(runs, allow_actions=False)
    yield UI(client, runs)
    await client.close()


def _chromium_starts(path: str) -> bool:
    try:
        done = subprocess.run(
            [path, "--headless", "--no-sandbox", "--disable-gpu", "--version"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of a chromium that starts; scripts/chromium.sh installs Debian's when it is missing."""
    path = os.environ.get("CONVEYOR_CHROMIUM", "/usr/bin/chromium")
    if not _chromium_starts(path):
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                ["bash", str(ROOT / "scripts" / "chromium.sh"), "start"], capture_output=True, timeout=1800, check=False
            )
    if not _chromium_starts(path):
        unavailable(f"chromium at {path} could not be installed or started (scripts/chromium.sh start)")
    return path
