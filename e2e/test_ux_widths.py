"""Every page fits the viewport at 390 and 1024 px, light and dark; key columns stay readable at 1024; the waterfall works at 390."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from harness import HERE, Dashboard, Feeder, Workload
from test_trace import ten_thousand_spans

__all__: list[str] = []

BIG = "9" * 32


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """One dashboard for the module, holding traces, retries, a queue, a search, a big trace and 12 calls still in flight."""
    dashboard = Dashboard(tmp_path_factory.mktemp("widths") / "dashboard.db")
    dashboard.start()
    held = Workload(dashboard, "concurrency")
    try:
        for scenario in ("trace", "queue"):
            done = Workload(dashboard, scenario)
            done.ready()
            done.finish()
            done.kill()
        feeder = Feeder(dashboard, service="a-service-name-long-enough-to-matter")
        feeder.send(ten_thousand_spans(BIG))
        feeder.close()
        example = [sys.executable, str(HERE.parent / "examples" / "optimize_prompt.py")]
        subprocess.run(example, env={**os.environ, "OPTO_DASHBOARD_URL": dashboard.url}, stdout=subprocess.DEVNULL, check=True, timeout=60)
        held.ready()
        yield dashboard
    finally:
        held.kill()
        dashboard.close()


def pages(dashboard: Dashboard) -> list[str]:
    agent = dashboard.get("/api/traces?name=agent")["traces"][0]["trace_id"]
    search = dashboard.get("/api/optimize")["searches"][0]
    return ["/live", "/traces", f"/traces/{agent}", f"/traces/{BIG}", "/queues", "/retries", "/debug", "/metrics", "/optimize",
            f"/optimize/{search['trace_id']}/{search['span_id']}", "/nope"]


def new_page(browser: Browser, width: int, scheme: str) -> Page:
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)  # type: ignore[arg-type]
    context.set_default_timeout(15_000)
    return context.new_page()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [390, 1024])
def test_no_page_is_wider_than_the_viewport(browser: Browser, filled: Dashboard, width: int, scheme: str) -> None:
    """The document never scrolls sideways: wide tables scroll inside their card."""
    page = new_page(browser, width, scheme)
    try:
        too_wide = {}
        for path in pages(filled):
            page.goto(filled.url + path)
            page.wait_for_load_state("networkidle")
            expect(page.locator("main h1")).to_be_visible()
            scroll = page.evaluate("document.documentElement.scrollWidth")
            if scroll > width:
                too_wide[path] = scroll
        assert not too_wide, f"pages wider than {width} px: {too_wide}"
    finally:
        page.context.close()


def visible_headers(page: Page, table: str) -> list[str]:
    """The headers of `table` that are inside its card's visible box (not scrolled or cut off)."""
    return page.locator(f"#{table}").evaluate("""t => {
        const box = t.closest('.card').getBoundingClientRect();
        return [...t.tHead.rows[0].cells].filter(c => {
            const r = c.getBoundingClientRect();
            return r.width > 0 && r.left >= box.left - 1 && r.right <= box.right + 1;
        }).map(c => c.textContent.trim());
    }""")


def test_live_tables_keep_their_key_columns_at_1024(browser: Browser, filled: Dashboard) -> None:
    """In flight keeps Waiting and Oldest, Processes keeps Host and Last seen, without scrolling the card."""
    page = new_page(browser, 1024, "light")
    try:
        page.goto(f"{filled.url}/live")
        expect(page.locator("#inflight-table tr[data-name='limited_work']")).to_have_count(1)
        expect(page.locator("#process-table tbody tr").first).to_be_visible()
        assert visible_headers(page, "inflight-table") == ["Function", "Running", "Waiting", "Oldest"]
        assert visible_headers(page, "process-table") == ["Service", "PID", "Host", "Last seen"]
    finally:
        page.context.close()


def test_waterfall_is_usable_at_390(browser: Browser, filled: Dashboard) -> None:
    """At 390 px the bars keep most of the row: the name column shrinks instead of the timeline."""
    page = new_page(browser, 390, "light")
    try:
        page.goto(f"{filled.url}/traces/{BIG}")
        expect(page.locator("body[data-ready='trace']")).to_have_count(1)
        track = page.locator(".wf-row .wf-track").first.bounding_box()
        name = page.locator(".wf-row .wf-name").first.bounding_box()
        assert track is not None and name is not None
        assert track["width"] >= 180, track
        assert name["width"] >= 100, name
        page.locator("#waterfall").focus()
        page.keyboard.press("e")
        expect(page.locator(".wf-row[aria-selected='true']")).to_have_attribute("data-outcome", "error")
    finally:
        page.context.close()
