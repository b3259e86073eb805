"""The HTML pages over the memory store and Postgres: what they show, that every user value is escaped, and that
bad input is a 400 page naming the field."""

from __future__ import annotations

import html as htmllib
import json
from html.parser import HTMLParser
from urllib.parse import urlencode

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
    assert "<svg" in html and 'class="node current visited" data-status="2"' in html
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


async def test_links_and_forms_reach_a_run_whose_id_has_slashes_and_question_marks(ui: UI, runs: Runs) -> None:
    """The store takes any run id: its links, its forms and the redirect after an action must all keep it one
    path segment (a "/" left as it is would reach another route, a "?" would start a query)."""
    odd = f"odd/run?id#{runs.workflow} é"
    await runs.make("odd-one", run_id=odd, run_state=RunState.RUNNING)
    listing = await (await ui.client.get(f"/?workflow={runs.workflow}")).text()
    href = htmllib.unescape(listing.split('<td><a href="', 1)[1].split('"', 1)[0])
    assert href == "/runs/odd%2Frun%3Fid%23" + runs.workflow + "%20%C3%A9"
    page = await ui.client.get(href)
    assert page.status == 200 and "odd-one" in await page.text()
    action = htmllib.unescape((await page.text()).split('<form method="post" action="', 1)[1].split('"', 1)[0])
    assert action == href + "/pause"
    posted = await ui.client.post(
        action, data={"csrf_token": await ui.token()}, headers={"Origin": ui.origin}, allow_redirects=False
    )
    assert (posted.status, posted.headers["Location"]) == (303, href)
    assert (await runs.store.lookup(odd)).run_state is RunState.PAUSED


class FilterForm(HTMLParser):
    """What a browser submits from the runs page's filter form, left as the page filled it in."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("name"):
            self.fields.append((a["name"] or "", a.get("value") or ""))
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select is not None and "selected" in a:
            self.fields.append((self._select, a.get("value") or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


async def test_the_filter_form_submits_every_filter_it_shows(ui: UI, runs: Runs) -> None:
    """A page reached by a link with several run states and foreign ids shows them all in its form, so pressing
    Filter again asks for the same runs (one box per foreign id: they may hold commas; run states joined)."""
    for name, state in (("a", RunState.PAUSED), ("b", RunState.CANCELLED), ("c", RunState.PAUSED)):
        await runs.make(name, run_state=state)
    query = [("workflow", runs.workflow), ("run_state", "PAUSED"), ("run_state", "CANCELLED")]
    query += [("foreign_id", "a"), ("foreign_id", "b,with a comma"), ("foreign_id", "b")]
    html = await (await ui.client.get("/?" + urlencode(query))).text()
    assert html.count("<tr data-run-id=") == 2
    form = FilterForm()
    form.feed(html.split('id="filters">', 1)[1].split("</form>", 1)[0])
    assert ("run_state", "PAUSED,CANCELLED") in form.fields
    assert [v for k, v in form.fields if k == "foreign_id"] == ["a", "b,with a comma", "b"]
    again = await (await ui.client.get("/?" + urlencode(form.fields))).text()
    rows = [line for line in again.splitlines() if "<tr data-run-id=" in line]
    assert rows == [line for line in html.splitlines() if "<tr data-run-id=" in line]
