"""The UI in a real headless Chromium (Debian's, driven by Playwright): the runs list with its filters and
paging, a run's page with its object, history and graph, an action clicked with actions enabled, and no buttons
when they are disabled. A screenshot of each step goes to artifacts/screenshots/ for a person to look at."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from conveyor import RunState
from tests.helpers import ROOT
from tests.ui.conftest import UI, Runs, Stage

SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def store_dsn() -> str | None:
    """The browser tests look at the pages, which the API tests already run on Postgres: memory is enough."""
    memory: str | None = None
    return memory


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    opened = await context.new_page()
    yield opened
    await context.close()


async def shot(page: Page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000
    return path


async def rows(page: Page) -> list[str]:
    texts: list[str] = await page.locator("#runs tbody tr[data-run-id] td:first-child").all_inner_texts()
    return texts


async def test_the_runs_list_filters_and_pages(ui: UI, runs: Runs, page: Page) -> None:
    for i in range(30):
        await runs.make(
            f"order-{i:02d}",
            status=Stage.CHECKED if i % 2 else Stage.RECEIVED,
            run_state=RunState.PAUSED if i % 5 == 0 else RunState.RUNNING,
        )
    await page.goto(ui.origin + "/")
    assert await page.title() == "Runs · conveyor"
    assert await rows(page) == [f"order-{i:02d}" for i in range(29, 4, -1)]
    await shot(page, "01-runs-list")

    await page.fill("input[name=workflow]", runs.workflow)
    await page.select_option("select[name=run_state]", "PAUSED")
    await page.fill("input[name=limit]", "4")
    await page.click("button[type=submit]")
    assert await rows(page) == ["order-25", "order-20", "order-15", "order-10"]
    assert "run_state=PAUSED" in page.url
    await shot(page, "02-runs-filtered")

    await page.click("#next-page")
    assert await rows(page) == ["order-05", "order-00"]
    assert await page.locator("#next-page").count() == 0
    await shot(page, "03-runs-next-page")
    await page.click("#prev-page")
    assert await rows(page) == ["order-25", "order-20", "order-15", "order-10"]
    assert await page.locator("#prev-page").count() == 0
    await page.click("#next-page")
    await page.click("#first-page")
    assert await rows(page) == ["order-25", "order-20", "order-15", "order-10"]

    await page.fill("input[name=status]", "checked")
    await page.select_option("select[name=run_state]", "")
    await page.fill("input[name=foreign_id]", "order-07")
    await page.click("button[type=submit]")
    assert await rows(page) == ["order-07"]

    await page.fill("input[name=status]", "received, checked")
    await page.fill("input[name=foreign_id]", "")
    await page.fill("input[name=limit]", "2")
    await page.click("button[type=submit]")
    assert await rows(page) == ["order-29", "order-28"]
    assert await page.input_value("input[name=status]") == "RECEIVED, CHECKED"
    await page.click("button[type=submit]")  # the form as shown asks for the same again
    assert await rows(page) == ["order-29", "order-28"]

    await page.fill("input[name=status]", "LOST")
    await page.click("button[type=submit]")
    assert "status: expected a status number or a status of" in await page.inner_text("#error")
    await shot(page, "04-runs-bad-filter")


async def test_a_runs_page_shows_object_history_and_graph(ui: UI, runs: Runs, page: Page) -> None:
    made = await runs.make("order-42", status=Stage.CHECKED, run_state=RunState.RUNNING)
    await page.goto(ui.origin + "/")
    await page.click("text=order-42")
    assert page.url.endswith(f"/runs/{made.run_id}")
    assert '"id": "order-42"' in await page.inner_text("#object")
    assert await page.inner_text("#status") == "CHECKED (2)"
    assert await page.inner_text("#run-state") == "Running"
    history: list[str] = await page.locator("#history tbody tr").all_inner_texts()
    assert len(history) == 2 and "Running" in history[0] and "Initiated" in history[1]
    graph = page.locator("svg.graph")
    assert await graph.count() == 1
    box: Any = await graph.bounding_box()
    assert box["width"] > 300 and box["height"] > 50
    assert await page.locator("svg.graph g.node.current text").text_content() == "CHECKED"
    await shot(page, "05-run-detail")

    await page.click("text=Workflows")
    assert await page.locator(f"#workflow-{runs.workflow} svg.graph g.node").count() == 4
    await shot(page, "06-workflows")


async def test_pause_then_resume_by_clicking(ui: UI, runs: Runs, page: Page) -> None:
    made = await runs.make("order-7", run_state=RunState.RUNNING)
    await page.goto(f"{ui.origin}/runs/{made.run_id}")
    assert await page.locator("#action-resume").count() == 0
    await shot(page, "07-before-pause")
    await page.fill("input[aria-label='reason for pause']", "checking the address")
    await page.click("#action-pause")
    await page.wait_for_url(f"{ui.origin}/runs/{made.run_id}")
    assert await page.inner_text("#run-state") == "Paused"
    assert await page.inner_text("#reason") == "checking the address"
    record = await runs.store.lookup(made.run_id)
    assert (record.run_state, record.meta.run_state_reason) == (RunState.PAUSED, "checking the address")
    await shot(page, "08-paused")

    await page.click("#action-resume")
    await page.wait_for_url(f"{ui.origin}/runs/{made.run_id}")
    assert await page.inner_text("#run-state") == "Running"
    assert (await runs.store.lookup(made.run_id)).run_state is RunState.RUNNING
    await shot(page, "09-resumed")


async def test_no_buttons_when_actions_are_disabled(ui_readonly: UI, runs: Runs, page: Page) -> None:
    made = await runs.make("order-8", run_state=RunState.RUNNING)
    await page.goto(f"{ui_readonly.origin}/runs/{made.run_id}")
    assert await page.inner_text("#run-state") == "Running"
    assert await page.locator("button[id^=action-]").count() == 0
    assert await page.locator("form[method=post]").count() == 0
    await shot(page, "10-read-only")
