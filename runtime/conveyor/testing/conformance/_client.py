"""`Client` on a set of adapters: a process with nothing but a record store (and, for `wait_for`, a streamer)
triggers, reads, steers and calls back runs that a worker in another process runs. Part of `WorkflowSuite`, so
every adapter set the workflow suite runs on (memory; Postgres with Kafka) runs these too: what a client writes
must reach running workers exactly as what the workflow writes itself (record and outbox event in one
transaction)."""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from conveyor._core.runstate import RunState
from conveyor._engine.builder import Builder
from conveyor._engine.client import Client
from conveyor._engine.run import Run
from conveyor.errors import ForkRefused, InvalidInput, InvalidStatus, InvalidTransition, WorkflowInProgress
from conveyor.testing.conformance._adapters import AdaptersFactory, build_on


class Ticket(BaseModel):
    title: str = ""
    answered: bool = False
    reply: str = ""


class TicketStatus(enum.IntEnum):
    OPENED = 1
    TRIAGED = 2
    WAITING = 3
    ANSWERED = 4
    CLOSED = 5


def _name(kind: str) -> str:
    return f"client-{kind}-{uuid.uuid4().hex[:10]}"


def _tickets(name: str, *, hold_first: bool = False) -> Builder[Ticket, TicketStatus]:
    """OPENED -> TRIAGED -> WAITING, a callback WAITING -> ANSWERED, then ANSWERED -> CLOSED. With `hold_first`
    the triage step pauses each run the first time it sees it (so a test can resume it from the client). A ticket
    titled "spam" is paused by triage every time (what a failing step's run looks like to an operator)."""
    seen: set[str] = set()

    def triage(run: Run[Ticket, TicketStatus]) -> Any:
        if run.object.title == "spam":
            return run.pause("looks like spam")
        if hold_first and run.run_id not in seen:
            seen.add(run.run_id)
            return run.pause("held for review")
        return TicketStatus.TRIAGED

    def wait(run: Run[Ticket, TicketStatus]) -> TicketStatus:
        return TicketStatus.WAITING

    def answered(run: Run[Ticket, TicketStatus], payload: bytes) -> TicketStatus:
        run.object.answered, run.object.reply = True, payload.decode()
        return TicketStatus.ANSWERED

    def close(run: Run[Ticket, TicketStatus]) -> TicketStatus:
        return TicketStatus.CLOSED

    b = Builder(name, Ticket, TicketStatus)
    b.add_step(TicketStatus.OPENED, triage, TicketStatus.TRIAGED)
    b.add_step(TicketStatus.TRIAGED, wait, TicketStatus.WAITING)
    b.add_callback(TicketStatus.WAITING, answered, TicketStatus.ANSWERED)
    b.add_step(TicketStatus.ANSWERED, close, TicketStatus.CLOSED)
    return b


async def _until(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll the async `check()` until it returns something true; that value."""
    async with asyncio.timeout(timeout):
        while not (found := await check()):
            await asyncio.sleep(0.02)
    return found


async def _at(client: Client, run_id: str, status: TicketStatus, state: RunState | None = None) -> Run[Any, Any]:
    async def reached() -> Run[Any, Any] | None:
        run = await client.get(run_id)
        return run if run.status == status and (state is None or run.run_state is state) else None

    found: Run[Any, Any] = await _until(reached)
    return found


class ClientCases:
    """Mixed into WorkflowSuite: needs its `adapters` fixture (an AdaptersFactory)."""

    async def test_client_triggers_and_calls_back_runs_a_worker_runs(self, adapters: AdaptersFactory) -> None:
        name = _name("trigger")
        worker = build_on(_tickets(name), adapters())
        async with worker, Client(adapters().store, _tickets(name)) as client:
            run_id = await client.trigger(name, "t-1", initial_value=Ticket(title="printer on fire"))
            with pytest.raises(WorkflowInProgress):
                await client.trigger(name, "t-1")
            waiting = await _at(client, run_id, TicketStatus.WAITING)
            assert waiting.object == Ticket(title="printer on fire") and waiting.run_state is RunState.RUNNING
            assert await client.callback(name, "t-1", TicketStatus.WAITING, b"turned it off and on")
            closed = await _at(client, run_id, TicketStatus.CLOSED, RunState.COMPLETED)
            assert closed.object.reply == "turned it off and on"
            history = await client.history(run_id)
            assert [h.status for h in history] == list(TicketStatus)
            assert [h.meta.version for h in history] == [1, 2, 3, 4, 5]
            # The worker's own view is the same run.
            assert (await worker.get_run(run_id)).status is TicketStatus.CLOSED

    async def test_client_controls_reach_a_running_worker(self, adapters: AdaptersFactory) -> None:
        name = _name("controls")
        worker = build_on(_tickets(name, hold_first=True), adapters(), pause_retry=None)
        async with worker, Client(adapters().store) as client:
            run_id = await client.trigger(_tickets(name), "t-2")
            held = await _at(client, run_id, TicketStatus.OPENED, RunState.PAUSED)
            assert held.meta.run_state_reason == "held for review"
            resumed = await client.resume(run_id)
            assert resumed.run_state is RunState.RUNNING
            await _at(client, run_id, TicketStatus.WAITING)
            cancelled = await client.cancel(run_id, "duplicate of t-1")
            assert (cancelled.run_state, cancelled.meta.run_state_reason) == (RunState.CANCELLED, "duplicate of t-1")
            with pytest.raises(InvalidTransition):
                await client.pause(run_id)
            await client.delete_data(run_id, "retention")
            await _at(client, run_id, TicketStatus.WAITING, RunState.DATA_DELETED)
            assert (await client.get(run_id)).object is None

    async def test_client_trigger_with_a_run_id_is_idempotent(self, adapters: AdaptersFactory) -> None:
        name = _name("idempotent")
        async with Client(adapters().store, _tickets(name)) as client:
            run_id = f"request-{uuid.uuid4().hex}"
            assert await client.trigger(name, "t-3", run_id=run_id) == run_id
            assert await client.trigger(name, "t-3", run_id=run_id) == run_id
            with pytest.raises(InvalidInput, match="run_id"):
                await client.trigger(name, "t-4", run_id=run_id)
            assert len(await client.history(run_id)) == 1

    async def test_client_lists_with_filters_and_keyset_pages(self, adapters: AdaptersFactory) -> None:
        name = _name("list")
        async with Client(adapters().store, _tickets(name)) as client:
            ids = [await client.trigger(name, f"t-{i}") for i in range(7)]
            await client.pause(ids[2], "look")
            await client.pause(ids[5], "look")
            seen: list[str] = []
            after = None
            while True:
                page = await client.list(name, limit=3, after=after)
                seen += [r.run_id for r in page.runs]
                if page.next_after is None:
                    break
                after = page.next_after
            assert seen == ids[::-1]
            paused = await client.list(name, run_states=[RunState.PAUSED])
            assert [r.run_id for r in paused.runs] == [ids[5], ids[2]] and paused.next_after is None
            one = await client.list(name, foreign_ids=["t-3"], statuses=[TicketStatus.OPENED])
            assert [r.run_id for r in one.runs] == [ids[3]]
            assert all(r.status is TicketStatus.OPENED for r in one.runs)

    async def test_a_client_without_the_code_reads_and_steers_runs(self, adapters: AdaptersFactory) -> None:
        name = _name("codeless")
        async with Client(adapters().store, _tickets(name)) as writer, Client(adapters().store) as client:
            run_id = await writer.trigger(name, "t-9", initial_value=Ticket(title="no code here"))
            run = await client.get(run_id)
            # Without the workflow's code: the stored status number and the stored JSON.
            assert run.status == int(TicketStatus.OPENED) and not isinstance(run.status, TicketStatus)
            assert run.object == {"title": "no code here", "answered": False, "reply": ""}
            paused = await client.pause(run_id, "by an operator")
            assert paused.run_state is RunState.PAUSED
            with pytest.raises(InvalidInput, match="workflow"):
                await client.trigger(name, "t-10")

    async def test_fork_restarts_a_paused_run_and_cancels_it(self, adapters: AdaptersFactory) -> None:
        name = _name("fork-paused")
        worker = build_on(_tickets(name), adapters(), pause_retry=None)
        async with worker, Client(adapters().store, _tickets(name)) as client:
            run_id = await client.trigger(name, "t-20", initial_value=Ticket(title="spam"))
            await _at(client, run_id, TicketStatus.OPENED, RunState.PAUSED)
            # The same object would pause again: the operator forks with it corrected.
            forked_id = await client.fork(run_id, object=Ticket(title="not spam after all"))
            old = await client.get(run_id)
            assert (old.run_state, old.meta.run_state_reason) == (RunState.CANCELLED, f"forked to {forked_id}")
            forked = await _at(client, forked_id, TicketStatus.WAITING)
            assert forked.foreign_id == "t-20" and forked.object.title == "not spam after all"
            assert (forked.meta.forked_from, forked.meta.forked_from_status) == (run_id, int(TicketStatus.OPENED))
            history = await client.history(forked_id)
            assert history[0].status is TicketStatus.OPENED and history[0].run_state is RunState.INITIATED
            assert all(h.meta.forked_from == run_id for h in history)
            # The worker's callback reaches the new run: it is the foreign id's latest.
            assert await client.callback(name, "t-20", TicketStatus.WAITING, b"ok")
            await _at(client, forked_id, TicketStatus.CLOSED, RunState.COMPLETED)

    async def test_fork_from_a_finished_run_at_an_earlier_status(self, adapters: AdaptersFactory) -> None:
        name = _name("fork-finished")
        worker = build_on(_tickets(name), adapters())
        async with worker, Client(adapters().store, _tickets(name)) as client:
            run_id = await client.trigger(name, "t-21", initial_value=Ticket(title="slow wifi"))
            await _at(client, run_id, TicketStatus.WAITING)
            assert await client.callback(name, "t-21", TicketStatus.WAITING, b"wrong answer")
            await _at(client, run_id, TicketStatus.CLOSED, RunState.COMPLETED)
            # Back to WAITING with the object as it was stored there: not answered yet.
            forked_id = await client.fork(run_id, TicketStatus.WAITING)
            forked = await client.get(forked_id)
            assert forked.status is TicketStatus.WAITING and forked.object == Ticket(title="slow wifi")
            assert (await client.get(run_id)).run_state is RunState.COMPLETED  # a finished run stays as it was
            with pytest.raises(ForkRefused, match=r"RUNNING|INITIATED"):
                await client.fork(forked_id)
            assert await client.callback(name, "t-21", TicketStatus.WAITING, b"right answer")
            closed = await _at(client, forked_id, TicketStatus.CLOSED, RunState.COMPLETED)
            assert closed.object.reply == "right answer"

            before = len((await client.list(name, limit=100)).runs)
            with pytest.raises(InvalidStatus, match=r"status.*reached"):
                await client.fork(forked_id, TicketStatus.OPENED)  # the fork started at WAITING
            with pytest.raises(InvalidStatus, match="consumes"):
                await client.fork(run_id, TicketStatus.CLOSED)  # terminal: a run started there has nothing to do
            with pytest.raises(InvalidInput, match="object"):
                await client.fork(run_id, TicketStatus.WAITING, object={"title": ["not", "text"]})
            await client.delete_data(run_id, "retention")
            await _at(client, run_id, TicketStatus.CLOSED, RunState.DATA_DELETED)
            with pytest.raises(ForkRefused, match="data was deleted"):
                await client.fork(run_id, TicketStatus.WAITING)
            assert len((await client.list(name, limit=100)).runs) == before  # nothing was written

    async def test_fork_racing_a_resume_exactly_one_wins(self, adapters: AdaptersFactory) -> None:
        name = _name("fork-race")
        async with Client(adapters().store, _tickets(name)) as forker, Client(adapters().store) as resumer:
            forks = 0
            for i in range(12):
                run_id = await forker.trigger(name, f"t-race-{i}")
                await forker.pause(run_id, "stuck")
                fork, resume = await asyncio.gather(forker.fork(run_id), resumer.resume(run_id), return_exceptions=True)
                runs = (await forker.list(name, foreign_ids=[f"t-race-{i}"])).runs
                old = await forker.get(run_id)
                if isinstance(fork, str):
                    forks += 1
                    assert isinstance(resume, InvalidTransition), resume
                    assert old.run_state is RunState.CANCELLED and old.meta.run_state_reason == f"forked to {fork}"
                    assert [r.run_id for r in runs] == [fork, run_id]
                else:
                    assert isinstance(fork, ForkRefused), fork
                    assert isinstance(resume, Run) and resume.run_state is RunState.RUNNING
                    assert old.run_state is RunState.RUNNING and [r.run_id for r in runs] == [run_id]
            # Which one wins is up to the interleaving; each run had exactly one winner, checked above.
            assert 0 <= forks <= 12
