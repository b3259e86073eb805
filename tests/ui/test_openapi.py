"""The OpenAPI document matches the app: the same paths and methods as its router, the list parameters the
handler accepts, and real answers of every documented kind (200, 400, 403, 404, 409) validate against the schemas
it gives (checked with jsonschema, as JSON Schema 2020-12, which OpenAPI 3.1 uses)."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # no stubs among the dev dependencies

from conveyor import RunState
from conveyor.ui._query import LIST_FIELDS
from tests.ui.conftest import UI, Runs


async def document(ui: UI) -> dict[str, Any]:
    response = await ui.client.get("/api/openapi.json")
    assert response.status == 200
    doc: dict[str, Any] = await response.json()
    assert doc["openapi"] == "3.1.0"
    return doc


def validator(doc: dict[str, Any], path: str, method: str, status: int) -> Draft202012Validator:
    responses = doc["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} does not document {status}"
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    # The document's components beside the schema, so its "#/components/..." references resolve in place.
    return Draft202012Validator({**schema, "components": doc["components"]})


async def check(ui: UI, doc: dict[str, Any], path: str, method: str, response: Any) -> None:
    body = await response.json()
    validator(doc, path, method, response.status).validate(body)


async def test_the_documented_paths_are_the_routes(ui: UI) -> None:
    doc = await document(ui)
    app = ui.client.app
    routes = {
        (r.resource.canonical, r.method.lower())
        for r in app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/api/") and r.method != "HEAD"
    }
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert routes == documented
    listed = {p["name"] for p in doc["paths"]["/api/runs"]["get"]["parameters"]}
    assert listed == set(LIST_FIELDS)


async def test_answers_validate_against_the_document(ui: UI, runs: Runs) -> None:
    doc = await document(ui)
    running = await runs.make("doc-1", run_state=RunState.RUNNING)
    await runs.make("doc-2", obj=b"\xff", run_state=RunState.PAUSED)
    await runs.make("doc-3", obj=None, run_state=RunState.COMPLETED)
    one, detail, action = "/api/runs", "/api/runs/{run_id}", "/api/runs/{run_id}/{action}"
    await check(ui, doc, one, "get", await ui.client.get(f"/api/runs?workflow={runs.workflow}&limit=2"))
    await check(ui, doc, one, "get", await ui.client.get("/api/runs?limit=0"))
    await check(ui, doc, detail, "get", await ui.client.get(f"/api/runs/{running.run_id}"))
    await check(ui, doc, detail, "get", await ui.client.get("/api/runs/nobody"))
    await check(ui, doc, action, "post", await ui.act(running.run_id, "pause", json={"reason": "doc"}))
    await check(ui, doc, action, "post", await ui.act(running.run_id, "pause"))  # 409: already paused
    await check(ui, doc, action, "post", await ui.act(running.run_id, "pause", json={"why": 1}))  # 400
    await check(ui, doc, action, "post", await ui.act("nobody", "cancel"))  # 404
    await check(ui, doc, action, "post", await ui.act(running.run_id, "resume", headers={"Origin": "http://x"}))
    await check(ui, doc, "/api/csrf", "get", await ui.client.get("/api/csrf"))
    await check(ui, doc, "/api/workflows", "get", await ui.client.get("/api/workflows"))
    for path in ("/api/workflows", "/api/csrf", "/api/openapi.json"):
        await check(ui, doc, path, "get", await ui.client.get(f"{path}?unexpected=1"))
