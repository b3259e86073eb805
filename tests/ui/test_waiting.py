"""Where runs wait, on the memory store and on real Postgres: a workflow's page and its JSON twin count the active
runs per status and run state with the age of the oldest, flag those over the step's lag alert, list the newest
paused runs with their reasons, link into the filtered runs list and colour the graph; a status the code no longer
has still shows by its number; an unknown workflow is a 404. And a run's page marks the path the run took."""

from __future__ import annotations

import html as htmllib
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import CookieJar, web
from aiohttp.test_utils import TestClient, TestServer

from conveyor import Builder, Run, RunState
from conveyor._core.records import Meta, Record
from conveyor.testing import FakeClock
from conveyor.ui import make_app
from tests.ui.conftest import UI, Parcel, Runs, Stage
from tests.ui.test_openapi import check, document

# The UI's clock stands two hours after the first test run was made.
AHEAD = timedelta(hours=2)
GONE = 9  # a status number the workflow's code does not have (a step removed since those runs reached it)


def _check(run: Run[Parcel, Stage]) -> Stage:
    return Stage.CHECKED


def _ship(run: Run[Parcel, Stage]) -> Stage:
    return Stage.SHIPPED


@pytest.fixture
async def ui(runs: Runs) -> AsyncIterator[UI]:
    """The UI over a workflow whose RECEIVED step keeps the default lag alert (30 minutes) and whose CHECKED step
    is given three hours, on a clock two hours after the runs' base time."""
    b = Builder(runs.workflow, Parcel, Stage)
    b.add_step(Stage.RECEIVED, _check, Stage.CHECKED, Stage.REJECTED)
    b.add_step(Stage.CHECKED, _ship, Stage.SHIPPED).with_options(lag_alert=timedelta(hours=3))
    runs.spec = b.spec()
    app = make_app(runs.store, workflows=[runs.spec], clock=FakeClock(runs.base + AHEAD))
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app), cookie_jar=CookieJar(unsafe=True))
    await client.start_server()
    yield UI(client, runs)
    await client.close()


async def waiting_runs(runs: Runs) -> dict[str, Record]:
    """Runs of every kind: late and fresh ones at RECEIVED, old but not late ones at CHECKED (two paused), a
    finished one, one at a status the code no longer has, and one of another workflow."""
    made = {
        "late": await runs.make("late", status=Stage.RECEIVED, run_state=RunState.RUNNING),
        "checked": await runs.make("checked", status=Stage.CHECKED, run_state=RunState.RUNNING),
        "paused-old": await runs.make("paused-old", status=Stage.CHECKED, run_state=RunState.PAUSED),
        "done": await runs.make("done", status=Stage.SHIPPED, run_state=RunState.COMPLETED),
        "gone": await runs.make("gone", status=GONE, run_state=RunState.RUNNING),
        "elsewhere": await runs.make("elsewhere", workflow=f"{runs.workflow}-other"),
    }
    # Five minutes before the UI's now: waiting, but not for long.
    runs.base += AHEAD - timedelta(minutes=5) - timedelta(seconds=runs.made)
    made["fresh"] = await runs.make("fresh", status=Stage.RECEIVED, run_state=RunState.INITIATED)
    made["paused-new"] = await runs.make("paused-new", status=Stage.CHECKED, run_state=RunState.PAUSED)
    return made


def counts(row: dict[str, Any]) -> dict[str, int]:
    return {s["run_state"]: s["count"] for s in row["run_states"]}


async def test_the_api_counts_active_runs_per_status_and_run_state(ui: UI, runs: Runs) -> None:
    start = runs.base
    made = await waiting_runs(runs)
    response = await ui.client.get(f"/api/workflows/{runs.workflow}")
    assert response.status == 200, await response.text()
    doc = await document(ui)
    await check(ui, doc, "/api/workflows/{name}", "get", response)
    body = await response.json()
    assert body["workflow"]["name"] == runs.workflow
    assert body["now"] == (start + AHEAD).isoformat()
    rows = {row["status"]: row for row in body["statuses"]}
    # The graph's statuses in its order, then the one the code no longer has.
    assert [row["status"] for row in body["statuses"]] == [1, 2, 4, 3, GONE]
    assert counts(rows[1]) == {"INITIATED": 1, "RUNNING": 1, "PAUSED": 0}
    assert counts(rows[2]) == {"INITIATED": 0, "RUNNING": 1, "PAUSED": 2}
    assert counts(rows[3]) == counts(rows[4]) == {"INITIATED": 0, "RUNNING": 0, "PAUSED": 0}
    assert counts(rows[GONE]) == {"INITIATED": 0, "RUNNING": 1, "PAUSED": 0}
    assert [rows[s]["active"] for s in (1, 2, 3, 4, GONE)] == [2, 3, 0, 0, 1]
    assert (rows[GONE]["status_name"], rows[GONE]["in_graph"], rows[GONE]["lag_alert_seconds"]) == (None, False, None)
    assert (rows[1]["status_name"], rows[1]["lag_alert_seconds"]) == ("RECEIVED", 1800.0)
    assert rows[2]["lag_alert_seconds"] == 3 * 3600.0
    assert rows[3]["lag_alert_seconds"] is None  # no step consumes SHIPPED

    # The late run has waited about two hours at RECEIVED (alert 30 minutes); the fresh one five minutes.
    running, initiated = rows[1]["run_states"][1], rows[1]["run_states"][0]
    assert running["oldest"] == made["late"].updated_at.isoformat()
    assert 2 * 3600 - 10 < running["age_seconds"] <= 2 * 3600 and running["over_lag_alert"] is True
    assert 290 <= initiated["age_seconds"] <= 300 and initiated["over_lag_alert"] is False
    assert rows[1]["over_lag_alert"] is True and rows[1]["age_seconds"] == running["age_seconds"]
    # Two hours at CHECKED is inside its three.
    assert rows[2]["over_lag_alert"] is False and rows[2]["age_seconds"] > 2 * 3600 - 10
    assert rows[2]["oldest"] == made["checked"].updated_at.isoformat()
    # No step, so no alert however long it waits.
    assert rows[GONE]["over_lag_alert"] is False and rows[GONE]["age_seconds"] > 3600

    # Paused runs newest first, with their reasons, in the shape of a run everywhere else.
    assert [p["foreign_id"] for p in body["paused"]] == ["paused-new", "paused-old"]
    assert {p["run_state_reason"] for p in body["paused"]} == {"set by the test"}
    assert body["paused"][0]["object"] == {"id": "paused-new", "note": "n"}
    assert body["paused_limit"] == 10


async def test_the_paused_list_is_the_newest_few(ui: UI, runs: Runs) -> None:
    for i in range(13):
        await runs.make(f"p{i:02d}", run_state=RunState.PAUSED)
    body = await (await ui.client.get(f"/api/workflows/{runs.workflow}")).json()
    assert [p["foreign_id"] for p in body["paused"]] == [f"p{i:02d}" for i in range(12, 2, -1)]
    assert counts(body["statuses"][0])["PAUSED"] == 13
    html = await (await ui.client.get(f"/workflows/{runs.workflow}")).text()
    assert html.count('<tr data-run-id="') == 10
    assert f'id="all-paused" href="/?workflow={runs.workflow}&amp;run_state=PAUSED"' in html


async def test_a_workflow_without_active_runs(ui: UI, runs: Runs) -> None:
    await runs.make("finished", status=Stage.SHIPPED, run_state=RunState.COMPLETED)
    body = await (await ui.client.get(f"/api/workflows/{runs.workflow}")).json()
    assert [row["active"] for row in body["statuses"]] == [0, 0, 0, 0]
    assert all(row["oldest"] is None and row["age_seconds"] is None for row in body["statuses"])
    assert body["paused"] == []
    html = await (await ui.client.get(f"/workflows/{runs.workflow}")).text()
    assert 'id="no-paused"' in html and "0 active runs" in html


async def test_the_page_shows_counts_ages_the_highlight_and_links_into_the_runs_list(ui: UI, runs: Runs) -> None:
    made = await waiting_runs(runs)
    response = await ui.client.get(f"/workflows/{runs.workflow}")
    assert response.status == 200
    html = await response.text()
    assert "6 active runs" in html
    table = html.split('<table id="waiting">', 1)[1].split("</table>", 1)[0]
    rows = {int(m.group(1)): m.group(0) for m in re.finditer(r'<tr data-status="(\d+)"[^>]*>.*?</tr>', table, re.S)}
    assert list(rows) == [1, 2, 4, 3, GONE]
    assert 'class="late"' in rows[1] and 'class="late"' not in rows[2] and 'class="late"' not in rows[GONE]
    # The late cell is RECEIVED's running one, with the oldest's age; the fresh initiated run is not late.
    assert re.search(r'<td class="count late" data-run-state="RUNNING">.*?oldest 1h 59m', rows[1], re.S)
    assert re.search(r'<td class="count" data-run-state="INITIATED">.*?oldest 4m 59s', rows[1], re.S)
    assert "30m" in rows[1] and "3h" in rows[2] and "none (no step)" in rows[GONE]
    assert f'>{GONE}</a> <span class="notice">(not in the code)</span>' in rows[GONE]
    # Each count links to the runs list filtered to exactly those runs.
    hrefs = [htmllib.unescape(h) for h in re.findall(r'href="(/\?[^"]+)"', rows[2])]
    assert f"/?workflow={runs.workflow}&status=2&run_state=PAUSED" in hrefs
    listed = await (await ui.client.get(f"/api/runs?workflow={runs.workflow}&status=2&run_state=PAUSED")).json()
    assert [r["foreign_id"] for r in listed["runs"]] == ["paused-new", "paused-old"]
    page = await ui.client.get(f"/?workflow={runs.workflow}&status=1&run_state=RUNNING")
    assert page.status == 200 and made["late"].run_id in await page.text()
    # So does the count of a status the code no longer has: the list takes its number.
    assert f"/?workflow={runs.workflow}&status={GONE}&run_state=RUNNING" in [
        htmllib.unescape(h) for h in re.findall(r'href="(/\?[^"]+)"', rows[GONE])
    ]
    page = await ui.client.get(f"/?workflow={runs.workflow}&status={GONE}&run_state=RUNNING")
    text = await page.text()
    assert page.status == 200 and made["gone"].run_id in text and made["late"].run_id not in text
    # The graph: counts in the labels, shaded by them, RECEIVED in the warning colour.
    graph = html.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert 'class="node start heat-3 late" data-status="1" data-active="2"' in graph
    assert 'class="node heat-4" data-status="2" data-active="3"' in graph
    assert 'class="node terminal" data-status="3" data-active="0"' in graph
    assert ">RECEIVED · 2</text>" in graph and ">CHECKED · 3</text>" in graph
    # Paused runs with their reasons, newest first, linked to their pages.
    paused = html.split('<table id="paused">', 1)[1].split("</table>", 1)[0]
    assert paused.index("paused-new") < paused.index("paused-old")
    assert f'href="/runs/{made["paused-new"].run_id}"' in paused and "set by the test" in paused


async def test_workflows_are_linked_from_where_they_are_listed(ui: UI, runs: Runs) -> None:
    made = await runs.make("linked")
    stranger = await runs.make("stranger", workflow=f"{runs.workflow}-not-given")
    link = f'href="/workflows/{runs.workflow}"'
    assert link in await (await ui.client.get("/workflows")).text()
    assert link in await (await ui.client.get(f"/?workflow={runs.workflow}")).text()
    # Runs of a workflow the UI was not given are listed, but there is no page of it to link to.
    listing = await (await ui.client.get(f"/?workflow={stranger.workflow_name}")).text()
    assert "stranger" in listing and 'href="/workflows/' not in listing.split('<table id="runs">', 1)[1]
    assert link in await (await ui.client.get(f"/runs/{made.run_id}")).text()


async def test_an_unknown_workflow_is_404_and_bad_requests_400(ui: UI, runs: Runs) -> None:
    await runs.make("someone", workflow=f"{runs.workflow}-not-given")
    doc = await document(ui)
    for name in ("nobody", f"{runs.workflow}-not-given"):
        response = await ui.client.get(f"/api/workflows/{name}")
        assert response.status == 404
        assert name in (await response.json())["error"]
        await check(ui, doc, "/api/workflows/{name}", "get", response)
        page = await ui.client.get(f"/workflows/{name}")
        assert page.status == 404 and page.content_type == "text/html"
        assert "was given to the UI" in await page.text()
    bad = await ui.client.get(f"/api/workflows/{runs.workflow}?x=1")
    assert bad.status == 400 and (await bad.json())["field"] == "x"
    await check(ui, doc, "/api/workflows/{name}", "get", bad)
    control = await ui.client.get(f"/api/workflows/{'w' * 2000}")
    assert control.status == 400 and (await control.json())["field"] == "workflow"
    assert (await ui.client.get(f"/workflows/{runs.workflow}?x=1")).status == 400


async def test_user_values_on_the_workflow_page_are_escaped(ui: UI, runs: Runs) -> None:
    made = await runs.make('<b>"x"</b>', run_state=RunState.PAUSED)
    await runs.store.store(
        Record(
            made.workflow_name,
            made.foreign_id,
            made.run_id,
            RunState.PAUSED,
            made.status,
            made.object,
            made.created_at,
            made.updated_at,
            Meta(version=3, run_state_reason="<script>alert(1)</script>"),
        ),
        expected_version=2,
    )
    html = await (await ui.client.get(f"/workflows/{runs.workflow}")).text()
    assert "<script>" not in html and "&lt;script&gt;" in html and "<b>" not in html


async def took(runs: Runs, foreign_id: str, steps: list[tuple[int, RunState]]) -> Record:
    """A run whose history walks `steps` (status, run state) after being initiated at the first status."""
    record = await runs.make(foreign_id, status=steps[0][0], run_state=RunState.INITIATED)
    for version, (status, state) in enumerate(steps, start=2):
        record = Record(
            record.workflow_name,
            record.foreign_id,
            record.run_id,
            state,
            status,
            json.dumps({"id": foreign_id}).encode(),
            record.created_at,
            record.updated_at + timedelta(seconds=1),
            Meta(version=version, run_state_reason="held" if state is RunState.PAUSED else ""),
        )
        await runs.store.store(record, expected_version=version - 1)
    return record


async def test_a_runs_page_marks_the_path_it_took(ui: UI, runs: Runs) -> None:
    # Paused and resumed at CHECKED (three versions there: one visit), then shipped.
    steps = [
        (Stage.RECEIVED, RunState.RUNNING),
        (Stage.CHECKED, RunState.RUNNING),
        (Stage.CHECKED, RunState.PAUSED),
        (Stage.CHECKED, RunState.RUNNING),
        (Stage.SHIPPED, RunState.COMPLETED),
    ]
    made = await took(runs, "walked", [(int(s), r) for s, r in steps])
    response = await ui.client.get(f"/api/runs/{made.run_id}")
    doc = await document(ui)
    await check(ui, doc, "/api/runs/{run_id}", "get", response)
    assert (await response.json())["path"] == [
        {"status": 1, "status_name": "RECEIVED"},
        {"status": 2, "status_name": "CHECKED"},
        {"status": 3, "status_name": "SHIPPED"},
    ]
    html = await (await ui.client.get(f"/runs/{made.run_id}")).text()
    graph = html.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert re.findall(r'<path class="edge edge-step taken" data-from="(\d)" data-to="(\d)"', graph) == [
        ("1", "2"),
        ("2", "3"),
    ]
    assert 'class="edge edge-step" data-from="1" data-to="4"' in graph  # not taken
    assert 'class="node start visited" data-status="1" data-visits="1"' in graph
    assert 'class="node visited" data-status="2" data-visits="2"' in graph
    assert 'class="node terminal current visited" data-status="3" data-visits="3"' in graph
    assert 'class="node terminal" data-status="4">' in graph
    path = html.split('<ol class="path" id="path">', 1)[1].split("</ol>", 1)[0]
    assert re.findall(r'<li data-status="(\d+)">(\w+)</li>', path) == [
        ("1", "RECEIVED"),
        ("2", "CHECKED"),
        ("3", "SHIPPED"),
    ]


async def test_a_path_back_through_a_status_and_to_one_the_code_no_longer_has(ui: UI, runs: Runs) -> None:
    made = await took(
        runs,
        "looped",
        [(1, RunState.RUNNING), (2, RunState.RUNNING), (1, RunState.RUNNING), (GONE, RunState.RUNNING)],
    )
    body = await (await ui.client.get(f"/api/runs/{made.run_id}")).json()
    assert [(p["status"], p["status_name"]) for p in body["path"]] == [
        (1, "RECEIVED"),
        (2, "CHECKED"),
        (1, "RECEIVED"),
        (GONE, None),
    ]
    html = await (await ui.client.get(f"/runs/{made.run_id}")).text()
    assert 'data-status="1" data-visits="1,3"' in html
    # CHECKED -> RECEIVED and RECEIVED -> 9 are not in the graph: only the step it has is marked.
    assert re.findall(r'class="edge edge-\w+ taken" data-from="(\d)" data-to="(\d)"', html) == [("1", "2")]
    assert f'<li data-status="{GONE}">{GONE}</li>' in html
