"""Queues, Retries, Debug and Metrics pages, and untrusted telemetry text on every page."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from conftest import Dialogs
from harness import Dashboard, Workload

__all__: list[str] = []

XSS_NAME = "<img src=x onerror=alert(1)>"
XSS_TEXT = "</script><script>alert(2)</script>"
PAGES = ["/live", "/traces", "/queues", "/retries", "/debug", "/metrics"]


def test_queue_page_shows_wait_distribution(page: Page, dashboard: Dashboard, workload: Callable[[str], Workload]) -> None:
    """A producer and two consumers on a bounded AsyncQueue: the wait histogram's bars hold every item waited."""
    program = workload("queue")
    program.ready()
    program.finish()
    page.goto(f"{dashboard.url}/queues")
    card = page.locator("section.queue[data-queue='jobs']")
    expect(card).to_be_visible()
    bars = card.locator("svg[data-chart='wait'] rect.bar")
    expect(bars.first).to_be_attached()
    waited = next(q for q in dashboard.get("/api/queues")["queues"] if q["name"] == "jobs")["wait_ms"]["count"]
    assert waited == 60  # every item, each put by a traced producer
    assert sum(int(b.get_attribute("data-count") or 0) for b in bars.all()) == waited
    expect(card.locator("[data-field='wait-p95']")).not_to_have_text("–")


def test_retries_page_lists_retry_with_cause(page: Page, dashboard: Dashboard, workload: Callable[[str], Workload]) -> None:
    """The retried call appears with its attempt, cause and a link to its trace."""
    program = workload("trace")
    program.ready()
    program.finish()
    page.goto(f"{dashboard.url}/retries")
    row = page.locator("#retry-table tbody tr", has_text="flaky_llm")
    expect(row).to_contain_text("opto.errors.RetryableError: rate limited, try again")  # qualified, as exception events
    expect(page.locator("#function-table tbody tr", has_text="flaky_llm")).to_contain_text("1.00")  # retries per call
    row.locator("a").click()
    expect(page.locator(".wf-row[aria-selected='true']")).to_contain_text("flaky_llm")


def test_every_page_is_reachable_by_url_and_keyboard(page: Page, dashboard: Dashboard) -> None:
    """Each page answers at its URL and the navigation can be walked with Tab."""
    for path in PAGES:
        page.goto(f"{dashboard.url}{path}")
        expect(page.locator("nav a[aria-current='page']")).to_have_attribute("href", path)
    page.goto(f"{dashboard.url}/live")
    page.keyboard.press("Tab")  # skip link
    page.keyboard.press("Tab")  # brand
    page.keyboard.press("Tab")
    expect(page.locator("nav a").first).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/traces$"))


def test_untrusted_text_renders_as_text_on_every_page(page: Page, dashboard: Dashboard, workload: Callable[[str], Workload], dialogs: Dialogs) -> None:
    """Span, argument, error, queue and metric names holding markup show as text, and no script runs."""
    program = workload("xss")
    program.ready()
    trace_id = ""
    try:
        page.goto(f"{dashboard.url}/live")
        expect(page.locator("#inflight-table")).to_contain_text(XSS_NAME)
        trace_id = dashboard.get("/api/traces")["traces"][0]["trace_id"]
    finally:
        program.release()
    program.finish()
    for path in [*PAGES, f"/traces/{trace_id}", f"/traces?q={XSS_NAME}"]:
        page.goto(f"{dashboard.url}{path}")
        page.wait_for_load_state("networkidle")
        assert page.locator("img[src='x']").count() == 0, path
        assert page.locator("main script").count() == 0, path
    page.goto(f"{dashboard.url}/traces/{trace_id}")
    expect(page.locator(".wf-row").first).to_contain_text(XSS_NAME)
    expect(page.locator("#detail-body")).to_contain_text(XSS_TEXT)
    page.goto(f"{dashboard.url}/retries")
    expect(page.locator("#retry-table")).to_contain_text(XSS_TEXT)
    page.goto(f"{dashboard.url}/traces")
    expect(page.locator("#trace-table")).to_contain_text(XSS_NAME)
    assert dialogs == []
