"""Where runs wait, in a real headless Chromium (as test_browser.py drives it): a workflow's page reached from the
workflows list shows the counts per status and run state, the late ones highlighted, and the graph coloured by
them; a count leads to the runs it counts; a run's page draws the path the run took. Screenshots go to
artifacts/screenshots/ beside test_browser.py's."""

from __future__ import annotations

from playwright.async_api import Page

from conveyor import RunState
from tests.ui import test_browser, test_waiting
from tests.ui.conftest import UI, Runs, Stage
from tests.ui.test_browser import shot
from tests.ui.test_waiting import GONE, took, waiting_runs

# Fixtures shared with those modules (pytest finds a module's fixtures by the names it holds): Chromium and its
# page on the memory store, and the UI whose clock stands two hours after the runs were made.
browser = test_browser.browser
page = test_browser.page
store_dsn = test_browser.store_dsn
ui = test_waiting.ui

WARNING_FILL = "rgb(247, 201, 196)"  # svg.graph .node.late rect
ACCENT = "rgb(47, 111, 223)"  # --accent: the path's arrows


async def fill(page: Page, selector: str) -> str:
    value: str = await page.locator(selector).evaluate("e => getComputedStyle(e).fill")
    return value


async def test_the_workflow_page_shows_where_runs_wait(ui: UI, runs: Runs, page: Page) -> None:
    await waiting_runs(runs)
    await page.goto(ui.origin + "/workflows")
    await page.click(f"#workflow-{runs.workflow} h2 a >> nth=0")
    assert page.url == f"{ui.origin}/workflows/{runs.workflow}"
    assert await page.title() == f"{runs.workflow} · conveyor"

    def cell(status: int, state: str) -> str:
        return f"#waiting tr[data-status='{status}'] td[data-run-state='{state}']"

    assert await page.inner_text(cell(1, "RUNNING")) == "1\noldest 1h 59m"
    assert await page.inner_text(cell(1, "INITIATED")) == "1\noldest 4m 59s"
    assert (await page.inner_text(cell(2, "PAUSED"))).startswith("2\n")
    assert await page.inner_text(cell(3, "RUNNING")) == "0"
    assert (await page.inner_text(f"#waiting tr[data-status='{GONE}'] td >> nth=0")).startswith(f"{GONE}")
    # The highlight: the late cell in the warning colours, the others not.
    late_bg = await page.locator(cell(1, "RUNNING")).evaluate("e => getComputedStyle(e).backgroundColor")
    fresh_bg = await page.locator(cell(1, "INITIATED")).evaluate("e => getComputedStyle(e).backgroundColor")
    assert late_bg == "rgb(253, 240, 239)" and fresh_bg != late_bg
    # The graph: RECEIVED late, CHECKED the busiest (darkest), the finished statuses left white.
    assert await fill(page, "svg.graph g.node[data-status='1'] rect") == WARNING_FILL
    assert await fill(page, "svg.graph g.node[data-status='2'] rect") == "rgb(106, 159, 233)"
    assert await fill(page, "svg.graph g.node[data-status='3'] rect") == "rgb(255, 255, 255)"
    assert await page.locator("svg.graph g.node[data-status='2'] text").text_content() == "CHECKED · 3"
    paused = await page.locator("#paused tbody tr td:first-child").all_inner_texts()
    assert paused == ["paused-new", "paused-old"]
    await shot(page, "11-workflow-waiting")

    await page.click(f"{cell(2, 'PAUSED')} a")
    assert "status=2" in page.url and "run_state=PAUSED" in page.url
    rows = await page.locator("#runs tbody tr[data-run-id] td:first-child").all_inner_texts()
    assert rows == ["paused-new", "paused-old"]
    await shot(page, "12-workflow-count-to-runs")


async def test_a_runs_page_draws_the_path_it_took(ui: UI, runs: Runs, page: Page) -> None:
    made = await took(
        runs,
        "walked",
        [
            (Stage.RECEIVED, RunState.RUNNING),
            (Stage.CHECKED, RunState.RUNNING),
            (Stage.CHECKED, RunState.PAUSED),
        ],
    )
    await page.goto(f"{ui.origin}/runs/{made.run_id}")
    assert await page.locator("#path li").all_inner_texts() == ["RECEIVED", "CHECKED"]
    taken = page.locator("svg.graph path.edge.taken")
    assert await taken.count() == 1
    assert await taken.evaluate("e => getComputedStyle(e).stroke") == ACCENT
    other = page.locator("svg.graph path.edge[data-from='2'][data-to='3']")
    assert await other.evaluate("e => getComputedStyle(e).stroke") != ACCENT
    visited = await page.locator("svg.graph g.node.visited").evaluate_all("es => es.map(e => e.dataset.status)")
    assert visited == ["1", "2"]
    assert await page.locator("svg.graph g.node.current text").text_content() == "CHECKED"
    await shot(page, "13-run-path")
    # The workflow's name leads to its page.
    await page.click(f"h1 a[href='/workflows/{runs.workflow}']")
    assert page.url == f"{ui.origin}/workflows/{runs.workflow}"
