"""The engine on a set of adapters: the reference's acceptance test (steps, a sharded step, a timeout) plus
our own cases (two processes competing for roles, a late outcome, data deletion, stranded runs), run against whatever
adapters the `adapters` fixture makes. Workflow names are unique per test, so shared services are fine."""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from pydantic import BaseModel

from conveyor._core.runstate import RunState
from conveyor._engine.builder import Builder
from conveyor._engine.options import STRANDED_CHECK_INTERVAL
from conveyor._engine.roles import ProcessKind
from conveyor._engine.run import Run
from conveyor._engine.stranded import StrandedRuns
from conveyor._engine.workflow import Workflow
from conveyor.testing._clock import FakeClock
from conveyor.testing._helpers import await_timeout_insert
from conveyor.testing.conformance._adapters import AdaptersFactory, build_on
from conveyor.testing.conformance._client import ClientCases


class User(BaseModel):
    uid: str = ""
    email: str = ""
    country_code: str = ""


class SyncStatus(enum.IntEnum):
    STARTED = 1
    EMAIL_SET = 2
    REGULATION_TIMEOUT = 3
    COMPLETED = 4


def _name(kind: str) -> str:
    return f"conformance-{kind}-{uuid.uuid4().hex[:10]}"


class WorkflowSuite(ClientCases):
    """Subclass as `class TestWorkflowOnX(WorkflowSuite)` and provide an `adapters` fixture (an AdaptersFactory).
    The Client cases (`_client`) come with it."""

    async def test_acceptance_full_run_through(self, adapters: AdaptersFactory) -> None:
        async def set_email(run: Run[User, SyncStatus]) -> SyncStatus:
            run.object.email = "andrew@workflow.com"
            return SyncStatus.EMAIL_SET

        def cool_down(run: Run[User, SyncStatus], now: datetime) -> datetime | None:
            return now + timedelta(hours=1) if run.object.country_code == "GB" else None

        async def cooled(run: Run[User, SyncStatus], now: datetime) -> SyncStatus:
            return SyncStatus.REGULATION_TIMEOUT if run.object.email else SyncStatus(0)

        async def generate_id(run: Run[User, SyncStatus]) -> SyncStatus:
            run.object.uid = uuid.uuid4().hex
            return SyncStatus.COMPLETED

        b = Builder(_name("acceptance"), User, SyncStatus)
        b.add_step(SyncStatus.STARTED, set_email, SyncStatus.EMAIL_SET).with_options(
            parallel_count=5, polling_frequency=timedelta(milliseconds=200)
        )
        b.add_timeout(SyncStatus.EMAIL_SET, cool_down, cooled, SyncStatus.REGULATION_TIMEOUT).with_options(
            polling_frequency=timedelta(milliseconds=200)
        )
        b.add_step(SyncStatus.REGULATION_TIMEOUT, generate_id, SyncStatus.COMPLETED).with_options(parallel_count=5)
        clock = FakeClock(datetime.fromisoformat("2023-04-09T08:30:00+00:00"))
        wf = build_on(b, adapters(), clock=clock)
        async with wf:
            run_id = await wf.trigger("1", initial_value=User(country_code="GB"))
            await await_timeout_insert(wf, "1", run_id, SyncStatus.EMAIL_SET, timeout=30)
            clock.advance(timedelta(hours=1))
            run = await wf.wait_for("1", run_id, SyncStatus.COMPLETED, timeout=30)
            assert run.object.email == "andrew@workflow.com"
            assert run.object.uid
            assert run.run_state is RunState.COMPLETED
            # The timeout fired once: later polls find nothing more to do.
            clock.advance(timedelta(hours=5))
            await asyncio.sleep(0.2)
            statuses = [h.status for h in await wf.history(run_id)]
            assert statuses == [
                SyncStatus.STARTED,
                SyncStatus.EMAIL_SET,
                SyncStatus.REGULATION_TIMEOUT,
                SyncStatus.COMPLETED,
            ]
            [timeout] = await adapters().timeout_store.list(wf.name)
            assert timeout.completed

    async def test_two_processes_each_step_outcome_stored_once(self, adapters: AdaptersFactory) -> None:
        name = _name("competing")
        handled: Counter[str] = Counter()

        def builder() -> Builder[User, SyncStatus]:
            async def step(run: Run[User, SyncStatus]) -> SyncStatus:
                handled[run.foreign_id] += 1
                return SyncStatus.EMAIL_SET

            async def finish(run: Run[User, SyncStatus]) -> SyncStatus:
                return SyncStatus.COMPLETED

            b = Builder(name, User, SyncStatus)
            b.add_step(SyncStatus.STARTED, step, SyncStatus.EMAIL_SET).with_options(parallel_count=3)
            b.add_step(SyncStatus.EMAIL_SET, finish, SyncStatus.COMPLETED).with_options(parallel_count=2)
            return b

        first, second = build_on(builder(), adapters()), build_on(builder(), adapters())
        await first.run()
        await second.run()
        try:
            ids = {f"user-{i}": await first.trigger(f"user-{i}") for i in range(40)}
            await asyncio.gather(*(second.wait_for(f, r, SyncStatus.COMPLETED, timeout=60) for f, r in ids.items()))
            assert set(handled) == set(ids) and set(handled.values()) == {1}
            for run_id in ids.values():
                history = await first.history(run_id)
                assert [h.meta.version for h in history] == [1, 2, 3]
        finally:
            await first.stop()
            await second.stop()

    async def test_a_late_outcome_is_discarded(self, adapters: AdaptersFactory) -> None:
        entered, release = asyncio.Event(), asyncio.Event()

        async def slow(run: Run[User, SyncStatus]) -> SyncStatus:
            entered.set()
            await release.wait()
            return SyncStatus.EMAIL_SET

        b = Builder(_name("late"), User, SyncStatus)
        b.add_step(SyncStatus.STARTED, slow, SyncStatus.EMAIL_SET)
        wf = build_on(b, adapters(), pause_retry=None)
        async with wf:
            run_id = await wf.trigger("late")
            await asyncio.wait_for(entered.wait(), 30)
            await wf.pause(run_id, "hold")
            release.set()
            async with asyncio.timeout(30):
                while not wf._rt.metrics.skipped_count(
                    "started-consumer-1-of-1", "outcome discarded: run changed meanwhile"
                ):
                    await asyncio.sleep(0.01)
            run = await wf.get_run(run_id)
            assert (run.run_state, run.status) == (RunState.PAUSED, SyncStatus.STARTED)

    async def test_data_deletion(self, adapters: AdaptersFactory) -> None:
        b = Builder(_name("delete"), User, SyncStatus)

        async def done(run: Run[User, SyncStatus]) -> SyncStatus:
            return SyncStatus.COMPLETED

        b.add_step(SyncStatus.STARTED, done, SyncStatus.COMPLETED)
        wf = build_on(b, adapters())
        async with wf:
            run_id = await wf.trigger("forget-me", initial_value=User(email="a@b.c"))
            await wf.wait_for("forget-me", run_id, SyncStatus.COMPLETED, timeout=30)
            await wf.delete_data(run_id, "gdpr")
            async with asyncio.timeout(30):
                while (await wf.get_run(run_id)).run_state is not RunState.DATA_DELETED:
                    await asyncio.sleep(0.01)
            assert (await wf.get_run(run_id)).object is None

    async def test_runs_a_new_build_cannot_move_are_counted_until_they_move(self, adapters: AdaptersFactory) -> None:
        """Runs left at a status whose step the next build of the workflow dropped: that build's stranded-runs
        check counts them as it starts, and again every period of the workflow's clock until they are gone."""
        name = _name("stranded")

        async def step(run: Run[User, SyncStatus]) -> SyncStatus:
            return SyncStatus.COMPLETED

        def builder(*, email_step: bool) -> Builder[User, SyncStatus]:
            b = Builder(name, User, SyncStatus)
            b.add_step(SyncStatus.STARTED, step, SyncStatus.EMAIL_SET)
            if email_step:
                b.add_step(SyncStatus.EMAIL_SET, step, SyncStatus.COMPLETED)
            return b

        clock = FakeClock()
        before = build_on(builder(email_step=True), adapters(), clock=clock)
        await before.run(roles=())  # triggers only: nothing moves the runs
        try:
            ids = [await before.trigger(f"user-{i}", start_at=SyncStatus.EMAIL_SET) for i in range(3)]
        finally:
            await before.stop()

        after = build_on(builder(email_step=False), adapters(), clock=clock)
        await after.run(roles=[p.role for p in after.processes() if p.kind == ProcessKind.STRANDED_CHECK])
        try:
            found = await _counted(after, lambda found: found is not None)
            assert [(s.status, s.name, s.label, s.count, s.run_states) for s in found] == [
                (int(SyncStatus.EMAIL_SET), "EMAIL_SET", "EMAIL_SET", 3, ((RunState.INITIATED, 3),))
            ]
            assert found[0].oldest <= clock.now()
            for run_id in ids:
                await after.pause(run_id, "to be moved")
                await after.cancel(run_id, "moved")
            # The next period, once the check sleeps until it.
            async with asyncio.timeout(30):
                while not clock.sleeping_until(clock.now() + STRANDED_CHECK_INTERVAL):
                    await asyncio.sleep(0.01)
            clock.advance(STRANDED_CHECK_INTERVAL)
            assert await _counted(after, lambda found: found == ()) == ()
        finally:
            await after.stop()
        assert after.stranded_runs() is None


async def _counted(wf: Workflow[User, SyncStatus], done: Callable[[object], bool]) -> tuple[StrandedRuns, ...]:
    async with asyncio.timeout(30):
        while not done(found := wf.stranded_runs()):
            await asyncio.sleep(0.01)
    assert found is not None
    return found
