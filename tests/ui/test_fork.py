"""The UI's Fork action, on the memory store and on Postgres: POST /api/runs/{run_id}/fork and the run page's fork
form start a new run from a stopped one (`Client.fork`), only with --allow-actions and past the same cross-site
checks as the other actions; refusals are 409/400 in JSON and change nothing; answers match the OpenAPI document."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta

from conveyor import RunState
from conveyor._core.records import Record
from tests.ui.conftest import UI, Runs, Stage
from tests.ui.test_openapi import check, document

FORK = "/api/runs/{run_id}/fork"


async def _advanced(runs: Runs, record: Record, status: Stage, run_state: RunState) -> Record:
    """The run's next version at `status`, as a step would store it."""
    after = dataclasses.replace(
        record, status=int(status), run_state=run_state, updated_at=record.updated_at + timedelta(seconds=1)
    )
    after.meta = dataclasses.replace(record.meta, version=record.meta.version + 1)
    await runs.store.store(after, expected_version=record.meta.version)
    return after


async def _count(runs: Runs) -> int:
    return len(await runs.store.list(runs.workflow, limit=100))


async def test_fork_of_a_paused_run_cancels_it_and_starts_a_new_one(ui: UI, runs: Runs) -> None:
    made = await runs.make("f-1", status=Stage.CHECKED, run_state=RunState.PAUSED)
    detail = await (await ui.client.get(f"/api/runs/{made.run_id}")).json()
    assert detail["actions"] == ["resume", "cancel", "fork"]
    response = await ui.act(made.run_id, "fork", json={"status": "checked", "object": {"id": "f-1", "note": "fixed"}})
    assert response.status == 201, await response.text()
    await check(ui, await document(ui), FORK, "post", response)
    body = await response.json()
    new, old = body["run"], body["forked_from"]
    assert (new["status_name"], new["run_state"], new["object"]) == (
        "CHECKED",
        "INITIATED",
        {"id": "f-1", "note": "fixed"},
    )
    assert new["forked_from"] == {"run_id": made.run_id, "status": 2, "status_name": "CHECKED"}
    assert (old["run_state"], old["run_state_reason"]) == ("CANCELLED", f"forked to {new['run_id']}")
    html = await (await ui.client.get(f"/runs/{new['run_id']}")).text()
    assert 'id="forked-from"' in html and f'href="/runs/{made.run_id}"' in html


async def test_the_run_page_forks_at_a_status_the_run_reached(ui: UI, runs: Runs) -> None:
    made = await runs.make("f-2", status=Stage.RECEIVED)
    done = await _advanced(
        runs, await _advanced(runs, made, Stage.CHECKED, RunState.RUNNING), Stage.SHIPPED, RunState.COMPLETED
    )
    html = await (await ui.client.get(f"/runs/{done.run_id}")).text()
    form = html[html.index(f'action="/runs/{done.run_id}/fork"') : html.index('id="action-fork"')]
    # The statuses offered are the ones reached that a step consumes (SHIPPED is terminal), the current selected.
    assert re.findall(r'<option value="(\d+)"', form) == ["1", "2"]
    response = await ui.client.post(
        f"/runs/{done.run_id}/fork",
        data={"csrf_token": await ui.token(), "status": "1", "object": ""},
        headers={"Origin": ui.origin},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    new_id = response.headers["Location"].removeprefix("/runs/")
    new = await runs.store.lookup(new_id)
    assert (new.status, new.run_state, new.meta.forked_from) == (1, RunState.INITIATED, done.run_id)
    assert new.object == made.object
    assert (await runs.store.lookup(done.run_id)).run_state is RunState.COMPLETED


async def test_fork_refusals_are_answered_and_change_nothing(ui: UI, runs: Runs) -> None:
    doc = await document(ui)
    running = await runs.make("f-3", run_state=RunState.RUNNING)
    assert "fork" not in (await (await ui.client.get(f"/api/runs/{running.run_id}")).json())["actions"]
    stopped = await runs.make("f-4", run_state=RunState.CANCELLED)
    deleted = await runs.make("f-5", obj=None, run_state=RunState.COMPLETED)
    before = await _count(runs)
    for run_id, kwargs, status, words in (
        (running.run_id, {}, 409, "still active"),
        (deleted.run_id, {}, 409, "data was deleted"),
        (stopped.run_id, {"json": {"status": "SHIPPED"}}, 400, "reached (RECEIVED)"),
        (stopped.run_id, {"json": {"status": "LOST"}}, 400, "a status number or a status of"),
        (stopped.run_id, {"json": {"object": {"note": ["not", "text"]}}}, 400, "object"),
        (stopped.run_id, {"json": {"colour": "red"}}, 400, '"status" and "object"'),
        (stopped.run_id, {"json": {"status": True}}, 400, "status"),
        ("nobody", {}, 404, "nobody"),
    ):
        response = await ui.act(run_id, "fork", **kwargs)
        assert response.status == status, (kwargs, await response.text())
        assert words in (await response.json())["error"]
        await check(ui, doc, FORK, "post", response)
    page = await ui.client.post(
        f"/runs/{stopped.run_id}/fork",
        data={"csrf_token": await ui.token(), "object": "{not json"},
        headers={"Origin": ui.origin},
    )
    assert page.status == 400 and "object: expected" in await page.text()
    assert await _count(runs) == before
    assert (await runs.store.lookup(stopped.run_id)).meta.version == 2


async def test_fork_needs_actions_enabled_and_the_cross_site_checks(ui: UI, ui_readonly: UI, runs: Runs) -> None:
    made = await runs.make("f-6", run_state=RunState.PAUSED)
    refused = await ui_readonly.act(made.run_id, "fork")
    assert refused.status == 403 and "--allow-actions" in (await refused.json())["error"]
    assert "fork" not in (await (await ui_readonly.client.get(f"/api/runs/{made.run_id}")).json())["actions"]
    for headers in ({"X-CSRF-Token": "forged"}, {"Origin": "http://evil.example"}):
        response = await ui.act(made.run_id, "fork", headers=headers)
        assert response.status == 403, headers
    page = await ui.client.post(
        f"/runs/{made.run_id}/fork", data={"csrf_token": "forged"}, headers={"Origin": ui.origin}
    )
    assert page.status == 403
    assert (await runs.store.lookup(made.run_id)).run_state is RunState.PAUSED
    assert await _count(runs) == 1
