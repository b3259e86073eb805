"""The HTML pages over the memory store and Postgres: what they show, that every user value is escaped, and that
bad input is a 400 page naming the field."""

from __future__ import annotations

import html as htmllib
import json

from conveyor import RunState
from tests.ui.conftest import UI, Runs, Stage

NASTY = '<script>alert("x")</script>&"\''


async def test_the_list_shows_runs_with_status_names_and_a_next_page_link(ui: UI, runs: Runs) -> None:
    for i in range(4):
        await runs.make(f"order-{i}", status=Stage.CHECKED)
    response = await ui.client.get(f"/?workflow={runs.workflow}&limit=3")
    html = await response.text()
    assert response.status == 200
    assert html.count("<tr data-run-id=") == 3
    assert "order-3" in html and "order-0" not in html
    assert "CHECKED" in html
    assert 'id="next-page"' in html
    next_href = html.split('id="next-page" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    second = await (await ui.client.get(next_href)).text()
    assert second.count("<tr data-run-id=") == 1 and "order-0" in second
    assert 'id="next-page"' not in second and 'id="first-page"' in second


async def test_user_values_are_escaped(ui: UI, runs: Runs) -> None:
    made = await runs.make(NASTY, obj=json.dumps({"note": NASTY}).encode(), run_state=RunState.PAUSED)
    for url in (f"/?workflow={runs.workflow}", f"/runs/{made.run_id}"):
        html = await (await ui.client.get(url)).text()
        assert "<script>" not in html
        assert "&lt;script&gt;" in html
    response = await ui.client.get("/", params={"workflow": NASTY, "foreign_id": NASTY})
    html = await response.text()
    assert response.status == 200 and "<script>" not in html


async def test_the_run_page_shows_object_graph_history_and_actions(ui: UI, runs: Runs) -> None:
    made = await runs.make("detail", status=Stage.CHECKED, run_state=RunState.RUNNING)
    response = await ui.client.get(f"/runs/{made.run_id}")
    html = await response.text()
    assert response.status == 200
    assert '"note": "n"' in htmllib.unescape(html)  # the object, indented JSON
    assert "<svg" in html and 'class="node current" data-status="2"' in html
    assert html.count("<tr><td>") == 2  # two versions in the history
    assert 'id="action-pause"' in html and 'id="action-cancel"' in html and 'id="action-resume"' not in html
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


async def test_a_run_of_an_unknown_workflow_still_shows(ui: UI, runs: Runs) -> None:
    made = await runs.make("stranger", workflow=f"{runs.workflow}-not-given", status=7)
    html = await (await ui.client.get(f"/runs/{made.run_id}")).text()
    assert "stranger" in html and "its graph is unknown" in html


async def test_the_workflows_page_draws_each_graph(ui: UI, runs: Runs) -> None:
    html = await (await ui.client.get("/workflows")).text()
    assert runs.workflow in html
    for name in ("RECEIVED", "CHECKED", "SHIPPED", "REJECTED"):
        assert f">{name}</text>" in html


async def test_bad_input_is_a_400_page_naming_the_field(ui: UI, runs: Runs) -> None:
    for url, field in (
        ("/?limit=-1", "limit"),
        ("/?run_state=NAPPING", "run_state"),
        ("/?status=abc", "status"),
        ("/workflows?x=1", "x"),
        ("/runs/some-run?y=2", "y"),
    ):
        response = await ui.client.get(url)
        assert response.status == 400, url
        assert f"{field}: expected" in await response.text()


async def test_an_unknown_run_is_a_404_page(ui: UI) -> None:
    response = await ui.client.get("/runs/nope")
    assert response.status == 404
    assert "nope" in await response.text()


async def test_a_refused_transition_is_a_409_page(ui: UI, runs: Runs) -> None:
    made = await runs.make("finished", run_state=RunState.COMPLETED)
    html = await (await ui.client.get(f"/runs/{made.run_id}")).text()
    assert 'id="action-pause"' not in html and 'id="action-delete"' in html
    token = await ui.token()
    response = await ui.client.post(
        f"/runs/{made.run_id}/resume", data={"csrf_token": token}, headers={"Origin": ui.origin}
    )
    assert response.status == 409
    assert "cannot move from COMPLETED to RUNNING" in await response.text()
    assert await ui.state(made.run_id) == (RunState.COMPLETED, 2)
