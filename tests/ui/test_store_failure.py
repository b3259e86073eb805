"""A record store that fails under the UI (Postgres cut off by a real network partition mid-serve) is a 503
naming the store's failure, not a bare 500; and an action attempted then changes nothing.

Each case makes one request after the cut: the pool hands out its broken connection, which fails at once (a
second request would wait out the pool's timeout, which proves nothing more)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from conveyor import RunState
from conveyor.adapters.postgres import PostgresRecordStore
from tests.adapters.tcp_proxy import TcpProxy
from tests.ui.conftest import UI, Runs, open_ui


@pytest.fixture
async def proxy(pg_dsn: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    parts = urlsplit(pg_dsn)
    assert parts.hostname is not None and parts.port is not None
    tcp = TcpProxy(parts.hostname, parts.port)
    await tcp.start()
    netloc = parts.netloc.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{tcp.port}")
    yield tcp, urlunsplit(parts._replace(netloc=netloc))
    tcp.cut()


@pytest.mark.parametrize(
    "request_kind", ["api list", "page", "api action", "form action", "api workflow", "workflow page"]
)
async def test_a_store_cut_off_is_503_and_changes_nothing(
    proxy: tuple[TcpProxy, str], pg_dsn: str, request_kind: str
) -> None:
    tcp, through = proxy
    store = PostgresRecordStore(through, pool_size=1)
    await store.open()
    runs = Runs(store)
    made = await runs.make("cut-off", run_state=RunState.RUNNING)
    client = await open_ui(runs, allow_actions=True)
    ui = UI(client, runs)
    try:
        token = await ui.token()
        tcp.cut()
        if request_kind == "api list":
            response = await client.get(f"/api/runs?workflow={runs.workflow}")
            assert "the record store failed" in (await response.json())["error"]
        elif request_kind == "page":
            response = await client.get(f"/runs/{made.run_id}")
            assert "Record store unavailable" in await response.text()
        elif request_kind == "api workflow":
            response = await client.get(f"/api/workflows/{runs.workflow}")
            assert "the record store failed" in (await response.json())["error"]
        elif request_kind == "workflow page":
            response = await client.get(f"/workflows/{runs.workflow}")
            assert "Record store unavailable" in await response.text()
        elif request_kind == "api action":
            response = await client.post(
                f"/api/runs/{made.run_id}/pause", headers={"X-CSRF-Token": token, "Origin": ui.origin}
            )
        else:
            response = await client.post(
                f"/runs/{made.run_id}/pause", data={"csrf_token": token}, headers={"Origin": ui.origin}
            )
        assert response.status == 503, await response.text()
    finally:
        await client.close()
        await store.close()
    direct = PostgresRecordStore(pg_dsn)
    await direct.open()
    try:
        record = await direct.lookup(made.run_id)
        assert (record.run_state, record.meta.version) == (RunState.RUNNING, 2)
    finally:
        await direct.close()
