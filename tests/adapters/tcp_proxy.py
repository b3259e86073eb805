"""A TCP forwarder on loopback that a test can cut: it stands between a client and a real server, so a test can
put a real network partition between them (connections reset, new ones refused) without stopping the server. Started
on a port given in advance, it is also a server that comes up late: refused until then."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import yaml  # type: ignore[import-untyped]  # no stubs among the dev dependencies


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.kubeconfig: Path | None = None

    async def start(self, port: int = 0) -> None:
        """Listen on `port` (0: any free one, then in `self.port`)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, upstream_writer}
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.close()

    def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    @classmethod
    @contextlib.asynccontextmanager
    async def to_kubeconfig_server(cls, kubeconfig: str) -> AsyncIterator[TcpProxy]:
        """A proxy in front of the kubeconfig's API server, with `proxy.kubeconfig` pointing through it."""
        document = yaml.safe_load(Path(kubeconfig).read_text())
        server = urlsplit(document["clusters"][0]["cluster"]["server"])
        assert server.hostname is not None and server.port is not None
        proxy = cls(server.hostname, server.port)
        await proxy.start()
        for cluster in document["clusters"]:
            cluster["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
        path = Path(kubeconfig).with_name(f"through-proxy-{proxy.port}.yaml")
        path.write_text(yaml.safe_dump(document))
        proxy.kubeconfig = path
        try:
            yield proxy
        finally:
            proxy.cut()
            path.unlink(missing_ok=True)
