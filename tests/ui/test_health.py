"""The UI's probes: /healthz answers while the process serves; /readyz answers 200 while the record store answers
(memory and real Postgres) and 503 with one line saying why when it does not: a store cut off by a real network
partition, a store that stops answering (its replies held back by the proxy: the deadline, not the driver, ends
the wait, and the UI is ready again once the replies flow), a store never opened. Probes by pod IP (v4 and v6)
pass the host check; a host name the UI was not given is still refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from conveyor.adapters.postgres import PostgresRecordStore
from conveyor.ui import make_app
from conveyor.ui._health import READY_TIMEOUT
from tests.adapters.tcp_proxy import TcpProxy
from tests.ui.conftest import UI, Runs, open_ui


class HoldingProxy(TcpProxy):
    """A TcpProxy that can hold back what passes through it (a server that stops answering, connections still
    open), and let it flow again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self.flowing = asyncio.Event()
        self.flowing.set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.close()


def _target(pg_dsn: str) -> tuple[str, int]:
    parts = urlsplit(pg_dsn)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def through(pg_dsn: str, proxy: TcpProxy) -> str:
    parts = urlsplit(pg_dsn)
    netloc = parts.netloc.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
async def held(pg_dsn: str) -> AsyncIterator[HoldingProxy]:
    proxy = HoldingProxy(*_target(pg_dsn))
    await proxy.start()
    yield proxy
    proxy.flowing.set()
    proxy.cut()


async def probe(client: TestClient[Any, Any], path: str, **kwargs: Any) -> tuple[int, str]:
    response = await client.get(path, **kwargs)
    return response.status, await response.text()


async def test_both_answer_while_the_store_does(ui_readonly: UI) -> None:
    assert await probe(ui_readonly.client, "/healthz") == (200, "ok\n")
    assert await probe(ui_readonly.client, "/readyz") == (200, "ready\n")
    head = await ui_readonly.client.head("/readyz")
    assert head.status == 200


@pytest.mark.parametrize("host", ["10.244.3.17:8080", "10.244.3.17", "[fd00:10:244::5]:8080"])
async def test_a_probe_by_pod_ip_passes_the_host_check(ui_readonly: UI, host: str) -> None:
    for path in ("/healthz", "/readyz"):
        status, _ = await probe(ui_readonly.client, path, headers={"Host": host})
        assert status == 200, (path, host)


async def test_an_unknown_host_name_is_still_refused(ui_readonly: UI) -> None:
    status, text = await probe(ui_readonly.client, "/readyz", headers={"Host": "rebound.example.com"})
    assert status == 403
    assert "rebound.example.com" in text


async def test_a_store_cut_off_is_not_ready_but_alive(pg_dsn: str) -> None:
    tcp = TcpProxy(*_target(pg_dsn))
    await tcp.start()
    store = PostgresRecordStore(through(pg_dsn, tcp), pool_size=1)
    await store.open()
    client = await open_ui(Runs(store), allow_actions=False)
    try:
        assert (await probe(client, "/readyz"))[0] == 200
        tcp.cut()
        status, text = await probe(client, "/readyz")
        assert status == 503
        assert text.startswith("not ready: the record store failed: ")
        assert text.endswith("\n") and text.count("\n") == 1, text
        assert await probe(client, "/healthz") == (200, "ok\n")
    finally:
        await client.close()
        await store.close()


async def test_a_store_that_stops_answering_is_not_ready_within_the_deadline(held: HoldingProxy, pg_dsn: str) -> None:
    store = PostgresRecordStore(through(pg_dsn, held), pool_size=1)
    await store.open()
    client = await open_ui(Runs(store), allow_actions=False)
    try:
        assert (await probe(client, "/readyz"))[0] == 200
        held.flowing.clear()
        status, text = await probe(client, "/readyz")
        assert (status, text) == (503, f"not ready: the record store did not answer within {READY_TIMEOUT:g} s\n")
        assert await probe(client, "/healthz") == (200, "ok\n")
        held.flowing.set()
        # The held query's answer arrives and frees the pool's one connection; the next probe gets through.
        assert await probe(client, "/readyz") == (200, "ready\n")
    finally:
        await client.close()
        held.cut()
        await store.close()


async def test_a_store_never_opened_is_not_ready(pg_dsn: str) -> None:
    app = make_app(PostgresRecordStore(pg_dsn))
    async with TestClient(TestServer(app)) as client:
        status, text = await probe(client, "/readyz")
        assert status == 503
        assert text == "not ready: the record store is not open yet\n"
