"""MemoryRoleScheduler: exclusive roles among everyone sharing one instance (it stands for the coordinator that
all processes share), with `revoke()` to simulate a holder that could not renew its lease."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

from conveyor._core.ports import RoleLease
from conveyor.adapters.memory._notify import Notifier


class _Lease:
    def __init__(self, role: str) -> None:
        self._role = role
        self._held = True
        self._lost = Notifier()

    @property
    def role(self) -> str:
        return self._role

    @property
    def held(self) -> bool:
        return self._held

    async def wait_lost(self) -> None:
        generation = self._lost.generation
        if not self._held:
            return
        await self._lost.wait(generation)

    def lose(self) -> None:
        self._held = False
        self._lost.notify()


class MemoryRoleScheduler:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders: dict[str, _Lease] = {}
        self._released = Notifier()

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def hold(self, role: str) -> AbstractAsyncContextManager[RoleLease]:
        return self._hold(role)

    @contextlib.asynccontextmanager
    async def _hold(self, role: str) -> AsyncIterator[RoleLease]:
        while True:
            with self._lock:
                if role not in self._holders:
                    lease = self._holders[role] = _Lease(role)
                    break
                generation = self._released.generation
            await self._released.wait(generation)
        try:
            yield lease
        finally:
            with self._lock:
                if self._holders.get(role) is lease:
                    del self._holders[role]
            lease.lose()
            self._released.notify()

    def is_held(self, role: str) -> bool:
        with self._lock:
            return role in self._holders

    def revoke(self, role: str) -> bool:
        """Take the role from its holder, as an expired lease would; True if someone held it."""
        with self._lock:
            lease = self._holders.pop(role, None)
        if lease is None:
            return False
        lease.lose()
        self._released.notify()
        return True
