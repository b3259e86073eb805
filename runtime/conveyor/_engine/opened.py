"""The adapters a workflow or a client opened, so that each is opened once and closed again, in reverse order,
whatever failed on the way (an adapter that failed to open is not closed; those opened before it are)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any


class OpenAdapters:
    def __init__(self) -> None:
        self._opened: list[Any] = []

    async def open(self, adapters: Iterable[Any]) -> None:
        """Open each adapter not opened yet; on a failure close what was opened and raise it."""
        try:
            for adapter in adapters:
                if adapter not in self._opened:
                    await adapter.open()
                    self._opened.append(adapter)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close every opened adapter, newest first; a failing close does not keep the others open."""
        while self._opened:
            adapter = self._opened.pop()
            with contextlib.suppress(Exception):
                await adapter.close()
