"""Client on the memory adapters: what it refuses (each refusal naming the field, nothing written), how it types
what it reads, and that a workflow's own API is its client. What reaches running workers is the conformance
suite's (`conveyor.testing.conformance._client`), run on memory and on Postgres + Kafka."""

from __future__ import annotations

from datetime import datetime

import pytest

from conveyor import Builder, Client, RunState, SortOrder
from conveyor.adapters.memory import MemoryRecordStore, MemoryStreamer
from conveyor.errors import InvalidInput, InvalidObject, InvalidStatus, InvalidTransition, RecordNotFound
from tests.conftest import Start
from tests.engine._orders import Order, Other, Status


def blocked_builder(name: str = "client-controls") -> Builder[Order, Status]:
    b = Builder(name, Order, Status)
    b.add_step(Status.CREATED, lambda run: run.skip(), Status.PAID)
    return b


async def client_on(*builders: Builder[Order, Status], streamer: MemoryStreamer | None = None) -> Client:
    client = Client(MemoryRecordStore(), *builders, streamer=streamer)
    await client.open()
    return client


async def test_pause_resume_cancel_delete_write_one_version_each() -> None:
    client = await client_on(blocked_builder())
    run_id = await client.trigger("client-controls", "o-1")
    paused = await client.pause(run_id, "looking into it")
    assert paused.run_state is RunState.PAUSED and paused.meta.run_state_reason == "looking into it"
    assert paused.meta.version == 2 and paused.status is Status.CREATED
    resumed = await client.resume(run_id)
    assert resumed.meta.version == 3 and resumed.run_state is RunState.RUNNING
    await client.cancel(run_id, "no longer wanted")
    await client.delete_data(run_id)
    assert [h.run_state for h in await client.history(run_id)] == [
        RunState.INITIATED,
        RunState.PAUSED,
        RunState.RUNNING,
        RunState.CANCELLED,
        RunState.REQUESTED_DATA_DELETED,
    ]


async def test_refused_changes_name_the_field_and_write_nothing() -> None:
    client = await client_on(blocked_builder())
    run_id = await client.trigger("client-controls", "o-2")
    with pytest.raises(InvalidTransition, match="cannot move from INITIATED to CANCELLED"):
        await client.cancel(run_id)
    with pytest.raises(InvalidInput, match="target: expected one of PAUSED, RUNNING"):
        await client.change_state(run_id, RunState.COMPLETED)
    with pytest.raises(InvalidInput, match="reason: expected a string of at most 1024 characters"):
        await client.pause(run_id, "x" * 1025)
    with pytest.raises(InvalidInput, match="reason"):
        await client.pause(run_id, "nul\x00")
    assert len(await client.history(run_id)) == 1
    with pytest.raises(RecordNotFound):
        await client.pause("no-such-run")


async def test_trigger_checks_what_it_is_given() -> None:
    client = await client_on(blocked_builder())
    with pytest.raises(InvalidObject, match="initial_value"):
        await client.trigger("client-controls", "o-3", initial_value={"amount": "lots"})
    with pytest.raises(InvalidStatus, match="start_at"):
        await client.trigger("client-controls", "o-3", start_at=Status.PAID)
    with pytest.raises(InvalidStatus, match="start_at"):
        await client.trigger("client-controls", "o-3", start_at=Other.CREATED)
    with pytest.raises(InvalidInput, match="foreign_id"):
        await client.trigger("client-controls", "")
    with pytest.raises(InvalidInput, match="run_id"):
        await client.trigger("client-controls", "o-3", run_id="x" * 129)
    with pytest.raises(InvalidInput, match="workflow: expected a workflow this client was given"):
        await client.trigger("no-such-workflow", "o-3")
    with pytest.raises(InvalidInput, match="workflow: expected Workflow, Builder or workflow spec"):
        await client.trigger(42, "o-3")  # type: ignore[call-overload]
    assert (await client.list()).runs == []
    # A definition not given to the constructor is added by the trigger that names it.
    run_id = await client.trigger(blocked_builder("client-later"), "o-4", initial_value=Order(id="o-4", amount=3))
    run = await client.get(run_id)
    assert run.object == Order(id="o-4", amount=3) and run.status is Status.CREATED


async def test_list_checks_its_page_and_filters() -> None:
    client = await client_on(blocked_builder())
    ids = [await client.trigger("client-controls", f"o-{i}") for i in range(3)]
    oldest = await client.list("client-controls", order=SortOrder.ASCENDING, limit=2)
    assert [r.run_id for r in oldest.runs] == ids[:2] and oldest.next_after == ids[1]
    with pytest.raises(InvalidInput, match="limit"):
        await client.list(limit=0)
    with pytest.raises(InvalidInput, match="offset"):
        await client.list(offset=-1)
    with pytest.raises(InvalidInput, match="statuses"):
        await client.list(statuses=[0])
    with pytest.raises(InvalidInput, match="run_states"):
        await client.list(run_states=["PAUSED"])  # type: ignore[list-item]
    with pytest.raises(InvalidInput, match="after"):
        await client.list(after="no-such-run")
    with pytest.raises(InvalidInput, match="after"):
        await client.list(after=42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="foreign_ids: expected a list of values"):
        await client.list(foreign_ids="o-1")
    with pytest.raises(InvalidInput, match="foreign_id"):
        await client.list(foreign_ids=["o-1", ""])
    with pytest.raises(InvalidInput, match="statuses: expected a list of values"):
        await client.list(statuses=Status.CREATED)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="created_after"):
        await client.list(created_after=datetime(2026, 1, 1))
    assert [r.run_id for r in (await client.list(foreign_ids=["o-1"])).runs] == [ids[1]]


async def test_get_scoped_to_a_workflow_refuses_another_workflows_run() -> None:
    client = await client_on(blocked_builder(), blocked_builder("client-other"))
    run_id = await client.trigger("client-other", "o-5")
    with pytest.raises(RecordNotFound):
        await client.get(run_id, "client-controls")
    assert (await client.get(run_id, "client-other")).run_id == run_id


async def test_wait_for_needs_a_streamer() -> None:
    client = await client_on(blocked_builder())
    run_id = await client.trigger("client-controls", "o-6")
    with pytest.raises(InvalidInput, match="streamer"):
        await client.wait_for(run_id, Status.PAID, timeout=1)


async def test_a_workflows_api_is_its_client(start: Start) -> None:
    wf = await start(blocked_builder(), pause_retry=None)
    assert isinstance(wf.client, Client) and wf.client.store is wf.store
    run_id = await wf.trigger("o-7")
    # One path: the workflow refuses what its client refuses.
    with pytest.raises(InvalidInput, match="reason: expected a string of at most 1024 characters"):
        await wf.pause(run_id, "x" * 2000)
    paused = await wf.client.pause(run_id, "from the client")
    assert (await wf.get_run(run_id)).meta.run_state_reason == "from the client"
    assert paused.status is Status.CREATED
    resumed = await wf.resume(run_id)
    assert resumed.status is Status.CREATED and resumed.run_state is RunState.RUNNING


async def test_a_client_refuses_what_is_not_a_store_or_a_workflow() -> None:
    with pytest.raises(InvalidInput, match="store"):
        Client(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="workflows"):
        Client(MemoryRecordStore(), "orders")  # type: ignore[arg-type]
