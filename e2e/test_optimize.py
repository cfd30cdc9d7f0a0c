"""The Optimization pages against a real `@trace.optimize` search streaming to the dashboard."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from conftest import Dialogs
from harness import Dashboard, Workload

__all__: list[str] = []

XSS_NAME = "<img src=x onerror=alert(1)>"
XSS_TEXT = "</script><script>alert(2)</script>"


def test_search_page_follows_a_running_search_to_its_best(
    page: Page, dashboard: Dashboard, workload: Callable[[str], Workload], dialogs: Dialogs
) -> None:
    """Held on its first proposal, the search shows depth 1 running; released, the same page fills in live."""
    program = workload("optimize")
    program.ready()
    try:
        page.goto(f"{dashboard.url}/optimize")
        row = page.locator("#search-table tbody tr").first
        expect(row).to_contain_text("optimize.<locals>.answer")
        expect(row).to_contain_text("running")
        row.focus()
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(r"/optimize/[0-9a-f]{32}/[0-9a-f]{16}$"))
        expect(page.locator("nav a[aria-current='page']")).to_have_attribute("href", "/optimize")
        depth1 = page.locator(".beam-col[data-depth='1']")
        expect(depth1.locator(".badge")).to_have_text("running")
        expect(page.locator(".cand[data-candidate='3']")).to_have_attribute("data-status", "running")
        expect(page.locator(".cand[data-candidate='2']")).to_have_class(re.compile(r"\bbest\b"))
        expect(page.locator("#best-score")).to_have_text("0.4")
    finally:
        program.release()
    program.finish()
    # No reload: the live socket brings the rest of the search.
    expect(page.locator("#depth")).to_have_text("3 / 3")
    expect(page.locator(".beam-col")).to_have_count(4)
    expect(page.locator("#best-score")).to_have_text("0.8")
    expect(page.locator(".cand.best")).to_have_count(1)
    best = page.locator(".cand.best")
    expect(best).to_have_attribute("data-candidate", "5")
    expect(best).to_contain_text("'bullet'")
    expect(best).to_have_attribute("data-status", "kept")
    expect(page.locator(".cand[data-candidate='1']")).to_have_attribute("data-status", "dropped")
    failed = page.locator(".cand[data-candidate='8']")
    expect(failed).to_have_attribute("data-status", "failed")
    expect(failed).to_contain_text(f"RuntimeError: model overloaded by {XSS_TEXT}")
    # The markup in a parameter value and in the error is text: no element was made of it, no script ran.
    expect(page.locator(".cand[data-candidate='6'] .cand-params")).to_contain_text(f"'{XSS_NAME}'")
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("main script").count() == 0
    expect(page.locator("#score-chart circle.opt-best-point")).to_have_count(4)
    expect(page.locator("#score-chart .opt-failed")).to_have_count(1)
    expect(page.locator("#best-params")).to_contain_text("'bullet'")
    failed.click()
    expect(page.locator(".wf-row[aria-selected='true']")).to_contain_text("opto.optimize.candidate")
    page.goto(f"{dashboard.url}/optimize")
    expect(page.locator("#search-table tbody tr").first.locator("[data-field='best-score']")).to_have_text("0.8")
    assert page.locator("img[src='x']").count() == 0
    assert dialogs == []


def test_unknown_search_reports_not_found(page: Page, dashboard: Dashboard) -> None:
    page.goto(f"{dashboard.url}/optimize/{'ab' * 16}/{'c' * 16}")
    expect(page.locator("#error")).to_contain_text("not found")
    response = page.goto(f"{dashboard.url}/optimize/nothex/{'c' * 16}")
    assert response is not None and response.status == 404
