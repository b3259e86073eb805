"""The UI's JSON API on the memory store and on real Postgres: listing with every filter and keyset paging, a run
with its history, the workflows, actions and their refusals (403 disabled, 404 unknown, 409 not allowed), and bad
parameters answered 400 naming the field with nothing changed."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor import RunState
from tests.ui.conftest import UI, Runs, Stage


async def listed(ui: UI, query: str) -> list[str]:
    response = await ui.client.get(f"/api/runs?workflow={ui.runs.workflow}&{query}")
    assert response.status == 200, await response.text()
    return [r["foreign_id"] for r in (await response.json())["runs"]]


async def test_list_filters_by_status_run_state_and_foreign_id(ui: UI, runs: Runs) -> None:
    await runs.make("a", status=Stage.RECEIVED, run_state=RunState.INITIATED)
    await runs.make("b", status=Stage.CHECKED, run_state=RunState.RUNNING)
    await runs.make("c", status=Stage.CHECKED, run_state=RunState.PAUSED)
    await runs.make("d", status=Stage.SHIPPED, run_state=RunState.COMPLETED)
    await runs.make("e", status=Stage.REJECTED, run_state=RunState.COMPLETED)
    await runs.make("other-workflow", workflow=f"{runs.workflow}-other")
    assert await listed(ui, "") == ["e", "d", "c", "b", "a"]
    assert await listed(ui, "order=asc") == ["a", "b", "c", "d", "e"]
    assert await listed(ui, "status=CHECKED") == ["c", "b"]
    assert await listed(ui, "status=checked&status=4") == ["e", "c", "b"]
    assert await listed(ui, "run_state=COMPLETED") == ["e", "d"]
    assert await listed(ui, "run_state=paused&run_state=1") == ["c", "a"]
    # The spellings `conveyor runs --run-state` takes, and a box of several as the status box takes them.
    assert await listed(ui, "run_state=Paused,%20initiated") == ["c", "a"]
    assert await listed(ui, "run_state=requested-data-deleted") == []
    assert await listed(ui, "foreign_id=d") == ["d"]
    assert await listed(ui, "foreign_id=d&foreign_id=a&foreign_id=nobody") == ["d", "a"]
    assert await listed(ui, "status=CHECKED&run_state=RUNNING") == ["b"]
    # Empty form fields mean "any".
    assert await listed(ui, "status=&run_state=&foreign_id=&limit=&cursor=&order=") == ["e", "d", "c", "b", "a"]


async def test_list_shows_every_field_with_status_names(ui: UI, runs: Runs) -> None:
    made = await runs.make("p-1", status=Stage.CHECKED, run_state=RunState.PAUSED)
    body = await (await ui.client.get(f"/api/runs?workflow={runs.workflow}")).json()
    assert body["next_cursor"] is None and body["limit"] == 25
    [run] = body["runs"]
    # The shape `conveyor runs show -o json` gives too (tests/cli/test_runs.py checks the same keys).
    assert run == {
        "run_id": made.run_id,
        "workflow_name": runs.workflow,
        "foreign_id": "p-1",
        "status": 2,
        "status_name": "CHECKED",
        "run_state": "PAUSED",
        "run_state_reason": "set by the test",
        "status_description": "",
        "version": 2,
        "trace_origin": "",
        "forked_from": None,
        "created_at": made.created_at.isoformat(),
        "updated_at": made.updated_at.isoformat(),
        "object": {"id": "p-1", "note": "n"},
        "object_encoding": "json",
    }


async def test_pages_follow_the_cursor_to_the_end_without_repeats(ui: UI, runs: Runs) -> None:
    for i in range(23):
        await runs.make(f"r{i:02d}", run_state=RunState.PAUSED if i % 2 else RunState.RUNNING)
    for query, expected in (
        ("", [f"r{i:02d}" for i in reversed(range(23))]),
        ("order=asc", [f"r{i:02d}" for i in range(23)]),
        ("run_state=PAUSED", [f"r{i:02d}" for i in reversed(range(1, 23, 2))]),
    ):
        pages: list[list[str]] = []
        cursor = ""
        while True:
            url = f"/api/runs?workflow={runs.workflow}&limit=5&{query}" + (f"&cursor={cursor}" if cursor else "")
            body = await (await ui.client.get(url)).json()
            pages.append([r["foreign_id"] for r in body["runs"]])
            assert (body["prev_cursor"] is None) == (not cursor)
            if body["next_cursor"] is None:
                break
            assert len(body["runs"]) == 5
            cursor = body["next_cursor"]
        assert [f for page in pages for f in page] == expected
        assert len(pages) == -(-len(expected) // 5)
        # And back again, page by page, from the last one.
        back: list[list[str]] = [pages[-1]]
        before = body["prev_cursor"]
        while before is not None:
            body = await (
                await ui.client.get(f"/api/runs?workflow={runs.workflow}&limit=5&{query}&before={before}")
            ).json()
            back.append([r["foreign_id"] for r in body["runs"]])
            assert body["next_cursor"] is not None
            before = body["prev_cursor"]
        assert back[::-1] == pages


async def test_a_run_with_its_history_and_the_actions_it_allows(ui: UI, runs: Runs) -> None:
    made = await runs.make("h-1", status=Stage.CHECKED, run_state=RunState.RUNNING)
    body = await (await ui.client.get(f"/api/runs/{made.run_id}")).json()
    assert body["run"]["foreign_id"] == "h-1" and body["run"]["status_name"] == "CHECKED"
    assert [(h["version"], h["run_state"]) for h in body["history"]] == [(1, "INITIATED"), (2, "RUNNING")]
    assert body["actions"] == ["pause", "cancel"]


async def test_objects_that_are_not_json_or_were_deleted(ui: UI, runs: Runs) -> None:
    text = await runs.make("t", obj=b"plain words")
    binary = await runs.make("b", obj=b"\xff\x00\x01")
    deleted = await runs.make("d", obj=None, run_state=RunState.COMPLETED)
    for record, expected in (
        (text, ("plain words", "text")),
        (binary, ("/wAB", "base64")),
        (deleted, (None, None)),
    ):
        run = (await (await ui.client.get(f"/api/runs/{record.run_id}")).json())["run"]
        assert (run["object"], run["object_encoding"]) == expected


async def test_workflows_describe_the_graph(ui: UI, runs: Runs) -> None:
    [wf] = (await (await ui.client.get("/api/workflows")).json())["workflows"]
    assert wf["name"] == runs.workflow
    assert [s["name"] for s in wf["statuses"]] == ["RECEIVED", "CHECKED", "REJECTED", "SHIPPED"]
    assert {(t["from"]["name"], t["to"]["name"]) for t in wf["transitions"]} == {
        ("RECEIVED", "CHECKED"),
        ("RECEIVED", "REJECTED"),
        ("CHECKED", "SHIPPED"),
    }
    assert "stateDiagram-v2" in wf["mermaid"]


async def test_pause_resume_cancel_delete(ui: UI, runs: Runs) -> None:
    made = await runs.make("act", run_state=RunState.RUNNING)
    response = await ui.act(made.run_id, "pause", json={"reason": "looks odd"})
    assert response.status == 200, await response.text()
    run = (await response.json())["run"]
    assert (run["run_state"], run["run_state_reason"], run["version"]) == ("PAUSED", "looks odd", 3)
    assert (await ui.runs.store.lookup(made.run_id)).meta.run_state_reason == "looks odd"
    assert (await (await ui.act(made.run_id, "resume")).json())["run"]["run_state"] == "RUNNING"
    assert (await (await ui.act(made.run_id, "cancel")).json())["run"]["run_state"] == "CANCELLED"
    assert (await (await ui.act(made.run_id, "delete")).json())["run"]["run_state"] == "REQUESTED_DATA_DELETED"
    history = await ui.runs.store.history(made.run_id)
    assert [h.run_state for h in history][-4:] == [
        RunState.PAUSED,
        RunState.RUNNING,
        RunState.CANCELLED,
        RunState.REQUESTED_DATA_DELETED,
    ]


async def test_a_transition_the_state_does_not_allow_is_409_and_changes_nothing(ui: UI, runs: Runs) -> None:
    made = await runs.make("done", run_state=RunState.COMPLETED)
    before = await ui.state(made.run_id)
    for action in ("pause", "resume", "cancel"):
        response = await ui.act(made.run_id, action)
        assert response.status == 409
        assert "COMPLETED" in (await response.json())["error"]
    assert await ui.state(made.run_id) == before


async def test_unknown_runs_are_404(ui: UI) -> None:
    assert (await ui.client.get("/api/runs/no-such-run")).status == 404
    response = await ui.act("no-such-run", "pause")
    assert response.status == 404
    assert "no-such-run" in (await response.json())["error"]


async def test_actions_are_refused_when_disabled(ui_readonly: UI, runs: Runs) -> None:
    made = await runs.make("ro", run_state=RunState.RUNNING)
    response = await ui_readonly.act(made.run_id, "pause")
    assert response.status == 403
    assert "--allow-actions" in (await response.json())["error"]
    assert await ui_readonly.state(made.run_id) == (RunState.RUNNING, 2)
    body = await (await ui_readonly.client.get(f"/api/runs/{made.run_id}")).json()
    assert body["actions"] == []


@pytest.mark.parametrize(
    ("query", "field", "expected"),
    [
        ("limit=0", "limit", "an integer from 1 to 200"),
        ("limit=201", "limit", "an integer from 1 to 200"),
        ("limit=ten", "limit", "an integer from 1 to 200"),
        ("limit=%2B5", "limit", "an integer from 1 to 200"),
        ("limit=5&limit=6", "limit", "one value"),
        ("status=SHIPPEDX", "status", "a status number or a status of parcels-"),
        ("status=0", "status", "an integer from 1 to 2147483647"),
        ("status=-2", "status", "an integer from 1 to 2147483647"),
        ("status=99999999999", "status", "an integer from 1 to"),
        ("run_state=SLEEPING", "run_state", "a run state (INITIATED, RUNNING, PAUSED"),
        # UNKNOWN is the zero value, never stored: asking for it is a mistake, not an empty page.
        ("run_state=UNKNOWN", "run_state", "a run state (INITIATED,"),
        ("run_state=0", "run_state", "an integer from 1 to 7"),
        ("run_state=8", "run_state", "an integer from 1 to 7"),
        ("order=sideways", "order", "asc or desc"),
        ("cursor=not-a-run", "cursor", "the run id of a stored run"),
        ("before=not-a-run", "before", "the run id of a stored run"),
        ("cursor=a&before=b", "before", "no cursor with it"),
        ("foreign_id=a%00b", "foreign_id", "text without control characters"),
        ("foreign_id=" + "x" * 1025, "foreign_id", "at most 1024 characters"),
        ("colour=red", "colour", "a known parameter"),
    ],
)
async def test_bad_list_parameters_are_400_naming_the_field(
    ui: UI, runs: Runs, query: str, field: str, expected: str
) -> None:
    await runs.make("x")
    response = await ui.client.get(f"/api/runs?workflow={runs.workflow}&{query}")
    assert response.status == 400, await response.text()
    body = await response.json()
    assert body["field"] == field
    assert expected in body["error"]


async def test_status_names_need_a_known_workflow(ui: UI) -> None:
    response = await ui.client.get("/api/runs?status=CHECKED")
    assert response.status == 400
    assert (await response.json())["field"] == "status"
    assert (await ui.client.get("/api/runs?status=2")).status == 200


@pytest.mark.parametrize(
    ("action", "kwargs", "field"),
    [
        ("explode", {}, "action"),
        ("pause", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}, "body"),
        ("pause", {"json": ["reason"]}, "body"),
        ("pause", {"json": {"reason": "x", "extra": 1}}, "body"),
        ("pause", {"json": {"reason": 7}}, "reason"),
        ("pause", {"json": {"reason": "r" * 1025}}, "reason"),
        ("pause", {"json": {"reason": "bell\x07"}}, "reason"),
    ],
)
async def test_bad_action_requests_are_400_and_change_nothing(
    ui: UI, runs: Runs, action: str, kwargs: dict[str, object], field: str
) -> None:
    made = await runs.make("bad-act", run_state=RunState.RUNNING)
    response = await ui.act(made.run_id, action, **kwargs)
    assert response.status == 400, await response.text()
    assert (await response.json())["field"] == field
    assert await ui.state(made.run_id) == (RunState.RUNNING, 2)
    assert len(await runs.store.history(made.run_id)) == 2


@pytest.mark.parametrize("path", ["/api/workflows?x=1", "/api/csrf?x=1", "/api/openapi.json?x=1"])
async def test_endpoints_without_parameters_refuse_one(ui: UI, path: str) -> None:
    response = await ui.client.get(path)
    assert response.status == 400
    assert (await response.json()) == {"error": "x: expected no query parameters here, got 'x'", "field": "x"}
    assert "Set-Cookie" not in response.headers


async def test_unknown_paths_and_methods_under_api_are_answered_in_json(ui: UI, runs: Runs) -> None:
    made = await runs.make("m")
    missing = await ui.client.get("/api/nothing")
    assert (missing.status, await missing.json()) == (404, {"error": "nothing here: /api/nothing"})
    wrong = await ui.client.get(f"/api/runs/{made.run_id}/pause")
    assert wrong.status == 405 and wrong.headers["Allow"] == "POST"
    assert (await wrong.json()) == {"error": "GET is not allowed here (allowed: POST)"}
    huge = await ui.act(made.run_id, "pause", data=b"{" + b" " * 2_000_000 + b"}")
    assert huge.status == 413 and "too large" in (await huge.json())["error"]
    assert await ui.state(made.run_id) == (RunState.RUNNING, 2)
    page = await ui.client.get("/nothing")
    assert page.status == 404 and page.content_type == "text/html"
    assert "nothing here: /nothing" in await page.text()


async def test_metrics_count_the_state_changes_made_here(ui: UI, runs: Runs) -> None:
    """/metrics is Prometheus text, and an action taken in the UI is counted as the reference counts a run state
    change (the runs' workflow is unique to this test, so the counts are this test's alone)."""
    made = await runs.make("counted", run_state=RunState.RUNNING)
    assert (await ui.act(made.run_id, "pause")).status == 200
    assert (await ui.act(made.run_id, "resume")).status == 200
    assert (await ui.act(made.run_id, "pause")).status == 200
    response = await ui.client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    changes = {
        (sample.labels["previous_run_state"], sample.labels["current_run_state"]): sample.value
        for family in text_string_to_metric_families(await response.text())
        if family.name == "workflow_run_state_changes"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels["workflow_name"] == runs.workflow
    }
    assert changes == {("Running", "Paused"): 2.0, ("Paused", "Running"): 1.0}
