"""The in-process handoff's claims: one handler per run at a time in a consumer, an event waits for the handoff of
its run, a handled version needs no second handling (nor an event that came while its handoff ran), and nothing
is handed off beyond the window, while stopping, for a stopped run or to a consumer that does not own the run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from conveyor._core.records import Meta, Record
from conveyor._core.runstate import RunState
from conveyor._engine.handoff import Handoff, Target

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def record(run_id: str, version: int = 2, *, status: int = 1, run_state: RunState = RunState.RUNNING) -> Record:
    return Record("wf", f"fid-{run_id}", run_id, run_state, status, b"{}", NOW, NOW, Meta(version=version))


def moved(r: Record, status: int) -> Record:
    """The record a step that moved `r` to `status` stores: its next version."""
    return Record(
        r.workflow_name,
        r.foreign_id,
        r.run_id,
        r.run_state,
        status,
        r.object,
        NOW,
        NOW,
        Meta(version=r.meta.version + 1),
    )


class Consumer:
    """A target whose handling is released by the test, recording what it handled."""

    def __init__(self, *, window: int = 8, owns: bool = True) -> None:
        self.handled: list[tuple[str, int]] = []
        self.tasks: list[asyncio.Task[object] | None] = []  # the task that handled each
        self.gate = asyncio.Event()
        self.fail = False
        self.accepting = True
        self.working_now = 0
        # The status of the record the step stores, as a step that moves the run on; None: it stores nothing.
        self.moves_to: int | None = None
        self.target = Target(lambda _: owns, self.handle, self.working, lambda: self.accepting, window)

    async def handle(self, r: Record) -> Record | None:
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("step failed")
        self.handled.append((r.run_id, r.meta.version))
        self.tasks.append(asyncio.current_task())
        if self.moves_to is None:
            return None
        return moved(r, self.moves_to)

    @contextlib.asynccontextmanager
    async def working(self) -> AsyncIterator[None]:
        self.working_now += 1
        try:
            yield
        finally:
            self.working_now -= 1


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_an_event_waits_for_the_handoff_of_its_run_and_then_needs_no_handling() -> None:
    consumer = Consumer()
    assert consumer.target.offer(record("r1", 2))
    await settle()
    assert consumer.working_now == 1  # the handoff runs inside the workflow's drain

    claiming = asyncio.ensure_future(consumer.target.claim("r1"))
    await settle()
    assert not claiming.done()  # the event of r1 waits while the handoff handles r1

    consumer.gate.set()
    await asyncio.wait_for(claiming, 5)
    assert consumer.handled == [("r1", 2)]
    assert consumer.target.handled("r1", 2)  # the event of version 2 is done already
    assert consumer.target.handled("r1", 1)
    assert not consumer.target.handled("r1", 3)  # a newer version is not
    assert not consumer.target.handled("r1", None)  # nor an event that does not say its version
    assert not consumer.target.handled("r2", 2)
    consumer.target.release("r1")
    assert consumer.working_now == 0


async def test_a_failed_handoff_leaves_the_version_to_its_event() -> None:
    consumer = Consumer()
    consumer.fail = True
    consumer.gate.set()
    assert consumer.target.offer(record("r1", 2))
    await asyncio.wait_for(consumer.target.claim("r1"), 5)
    assert consumer.handled == []
    assert not consumer.target.handled("r1", 2)
    consumer.target.release("r1")


async def test_an_event_that_came_during_its_handoff_finds_it_handled_once_it_may_claim() -> None:
    consumer = Consumer()
    assert consumer.target.offer(record("r1", 2))
    await settle()
    waiting = asyncio.ensure_future(consumer.target.claim("r1"))
    await settle()
    assert not waiting.done()  # it waits for the handoff rather than being handled beside it
    consumer.gate.set()
    await asyncio.wait_for(waiting, 5)
    assert consumer.target.handled("r1", 2)  # handled by the handoff: nothing left to do (or to observe)
    assert not consumer.target.handled("r1", 3)  # a newer version is not
    consumer.target.release("r1")
    assert not consumer.target.busy("r1")

    consumer.fail = True
    assert consumer.target.offer(record("r1", 3))
    await asyncio.wait_for(consumer.target.claim("r1"), 5)
    assert not consumer.target.handled("r1", 3)  # failed: the event handles it
    consumer.target.release("r1")


async def test_a_claimed_run_is_not_handed_off() -> None:
    consumer = Consumer()
    consumer.gate.set()
    await consumer.target.claim("r1")  # its event is being handled
    assert not consumer.target.offer(record("r1", 3))
    consumer.target.release("r1")
    assert consumer.target.offer(record("r1", 3))
    await settle()
    assert consumer.handled == [("r1", 3)]


async def test_a_version_whose_event_was_handled_first_is_not_handed_off() -> None:
    consumer = Consumer()
    consumer.gate.set()
    await consumer.target.claim("r1")  # the event of version 2 came before the committer offered it
    consumer.target.note_handled("r1", 2)
    consumer.target.release("r1")
    assert not consumer.target.offer(record("r1", 2))
    assert consumer.target.offer(record("r1", 3))  # a newer version is handed off
    await settle()
    assert consumer.handled == [("r1", 3)]
    consumer.target.note_handled("r1", 1)  # an older note never forgets a newer version
    assert consumer.target.handled("r1", 3)


async def test_no_handoff_beyond_the_window_or_while_stopping() -> None:
    consumer = Consumer(window=2)
    assert consumer.target.offer(record("r1"))
    assert consumer.target.offer(record("r2"))
    assert not consumer.target.offer(record("r3"))  # two already run: r3's event will bring it
    consumer.gate.set()
    await settle()
    assert sorted(consumer.handled) == [("r1", 2), ("r2", 2)]
    consumer.accepting = False
    assert not consumer.target.offer(record("r3"))
    await settle()
    assert not consumer.target.handled("r3", 2)


async def test_close_cancels_running_handoffs_and_releases_their_claims() -> None:
    consumer = Consumer()
    assert consumer.target.offer(record("r1"))
    await settle()
    await consumer.target.close()
    assert consumer.handled == []
    assert not consumer.target.handled("r1", 2)
    await asyncio.wait_for(consumer.target.claim("r1"), 5)  # the event is not kept waiting
    consumer.target.release("r1")
    assert consumer.working_now == 0


async def test_handoff_goes_to_the_owning_consumer_of_the_records_status_only() -> None:
    handoff = Handoff()
    other_shard, owner, other_status = Consumer(owns=False), Consumer(), Consumer()
    for c in (owner, other_shard, other_status):
        c.gate.set()
    handoff.add(1, other_shard.target)
    handoff.add(1, owner.target)
    handoff.add(2, other_status.target)

    assert handoff.offer(record("r1", status=1))
    stopped = [state for state in RunState if state.stopped()]
    assert RunState.PAUSED in stopped
    for state in stopped:  # consumers skip stopped runs
        assert not handoff.offer(record(f"r-{state.name}", status=1, run_state=state))
    assert not handoff.offer(record("r2", status=3))  # no consumer of status 3 here
    await settle()
    assert owner.handled == [("r1", 2)]
    assert other_shard.handled == [] and other_status.handled == []

    handoff.remove(1, owner.target)
    assert not handoff.offer(record("r4", status=1))


def chained() -> tuple[Handoff, Consumer, Consumer]:
    """A handoff with the consumers of two statuses: the first's step moves the run to the second's."""
    handoff = Handoff()
    first, second = Consumer(), Consumer()
    first.moves_to = 2
    handoff.add(1, first.target)
    handoff.add(2, second.target)
    return handoff, first, second


async def test_a_handoff_goes_on_with_the_record_it_stored_in_the_same_task() -> None:
    handoff, first, second = chained()
    first.gate.set()
    second.gate.set()
    assert handoff.offer(record("r1", 2, status=1))
    await settle()
    assert first.handled == [("r1", 2)] and second.handled == [("r1", 3)]
    assert first.tasks[0] is second.tasks[0]  # one task for both steps
    assert first.target.handled("r1", 2) and second.target.handled("r1", 3)
    assert not first.target.busy("r1") and not second.target.busy("r1")


async def test_a_handoff_goes_on_only_where_it_may_and_leaves_the_rest_to_the_event() -> None:
    handoff, first, second = chained()
    first.gate.set()
    second.gate.set()
    second.accepting = False  # stopping: the second step takes nothing
    assert handoff.offer(record("r1", 2, status=1))
    await settle()
    assert first.handled == [("r1", 2)] and second.handled == []
    assert not second.target.handled("r1", 3)

    second.accepting = True
    await second.target.claim("r2")  # the second step's event of r2 is being handled: r2 is not taken over
    assert handoff.offer(record("r2", 2, status=1))
    await settle()
    second.target.release("r2")
    await settle()
    assert first.handled == [("r1", 2), ("r2", 2)] and second.handled == []

    assert handoff.offer(record("r3", 2, status=1))  # nothing in the way: it goes on
    await settle()
    assert second.handled == [("r3", 3)]


async def test_a_chained_handoff_is_the_next_consumers_to_cancel() -> None:
    handoff, first, second = chained()
    first.gate.set()  # the second step waits at its gate
    assert handoff.offer(record("r1", 2, status=1))
    await settle()
    assert first.handled == [("r1", 2)] and second.target.busy("r1")
    await first.target.close()  # no longer the first consumer's: nothing to cancel there
    assert second.target.busy("r1")
    await second.target.close()
    assert not second.target.busy("r1") and second.handled == []
    assert second.working_now == 0 and first.working_now == 0


async def test_a_handoff_that_goes_on_and_on_lets_the_loop_run_others() -> None:
    """A step that stores and repeats, on a store that never waits: the handoff still yields to the loop, so
    another task gets to run (here: the one that ends the repeating) within a few steps."""
    handoff = Handoff()
    steps: list[int] = []
    stop = False

    async def repeat(r: Record) -> Record | None:
        steps.append(r.meta.version)
        if stop or len(steps) >= 200:  # 200: where the test gives up on it without hanging
            return None
        return moved(r, 1)

    @contextlib.asynccontextmanager
    async def working() -> AsyncIterator[None]:
        yield

    target = Target(lambda _: True, repeat, working, lambda: True, 8)
    handoff.add(1, target)
    assert handoff.offer(record("r1", 2, status=1))
    others_ran_after: list[int] = []

    async def other() -> None:  # scheduled after the handoff's task
        nonlocal stop
        others_ran_after.append(len(steps))
        stop = True

    asyncio.get_running_loop().create_task(other())
    await settle()
    assert others_ran_after and 1 <= others_ran_after[0] <= 8
    assert len(steps) <= 9
