"""RoleSchedulerSuite: the reference's role-scheduler tests (locking, releasing) plus ours: exclusivity among many
holders, release on error, cancelled waiters, independent roles."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from conveyor._core.ports import RoleScheduler
from conveyor.testing.conformance._support import unique

RoleSchedulers = Callable[[int], list[RoleScheduler]]
WAIT = 30.0


class RoleSchedulerSuite:
    """Subclass and provide `role_schedulers`: a callable `(n) -> n` opened schedulers, one per "process"."""

    async def test_the_lease_is_held_inside_the_block(self, role_schedulers: RoleSchedulers) -> None:
        [scheduler] = role_schedulers(1)
        role = unique("held")
        async with scheduler.hold(role) as lease:
            assert lease.role == role
            assert lease.held
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(lease.wait_lost(), 0.2)

    async def test_only_one_holder_at_a_time(self, role_schedulers: RoleSchedulers) -> None:
        schedulers = role_schedulers(5)
        role = unique("exclusive")
        inside, most, order = 0, 0, []

        async def work(index: int, scheduler: RoleScheduler) -> None:
            nonlocal inside, most
            async with scheduler.hold(role):
                inside += 1
                most = max(most, inside)
                order.append(index)
                await asyncio.sleep(0.05)
                inside -= 1

        await asyncio.wait_for(asyncio.gather(*(work(i, s) for i, s in enumerate(schedulers))), WAIT)
        assert most == 1
        assert sorted(order) == [0, 1, 2, 3, 4]

    async def test_a_waiter_gets_the_role_once_released(self, role_schedulers: RoleSchedulers) -> None:
        first, second = role_schedulers(2)
        role = unique("release")
        acquired = asyncio.Event()

        async def wait_for_it() -> None:
            async with second.hold(role):
                acquired.set()

        async with first.hold(role):
            waiter = asyncio.ensure_future(wait_for_it())
            await asyncio.sleep(0.2)
            assert not acquired.is_set()
        await asyncio.wait_for(waiter, WAIT)
        assert acquired.is_set()

    async def test_an_error_releases_the_role(self, role_schedulers: RoleSchedulers) -> None:
        first, second = role_schedulers(2)
        role = unique("error")
        with pytest.raises(RuntimeError):
            async with first.hold(role):
                raise RuntimeError("boom")
        async with asyncio.timeout(WAIT), second.hold(role) as lease:
            assert lease.held

    async def test_a_cancelled_waiter_holds_nothing(self, role_schedulers: RoleSchedulers) -> None:
        first, second, third = role_schedulers(3)
        role = unique("cancelled")

        async def wait_for_it() -> None:
            async with second.hold(role):
                raise AssertionError("a cancelled waiter got the role")

        async with first.hold(role):
            waiter = asyncio.ensure_future(wait_for_it())
            await asyncio.sleep(0.1)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        async with asyncio.timeout(WAIT), third.hold(role) as lease:
            assert lease.held

    async def test_roles_are_independent(self, role_schedulers: RoleSchedulers) -> None:
        first, second = role_schedulers(2)
        async with first.hold(unique("a")), asyncio.timeout(WAIT), second.hold(unique("b")) as lease:
            assert lease.held
