"""The Traces page's filters in Chromium: name prefix with suggestions, service, attribute and search."""

from __future__ import annotations

import secrets
import time

from playwright.sync_api import Page, expect

from harness import Dashboard, Feeder, span

__all__: list[str] = []


def trace(name: str, *, start_ns: int, attributes: dict[str, object] | None = None, events: list[dict[str, object]] | None = None,
          outcome: str = "ok") -> dict[str, object]:
    return span(secrets.token_hex(16), secrets.token_hex(8), name, start_ns, start_ns + 1_000_000,
                attributes=attributes, events=events, outcome=outcome)


def test_traces_page_filters_suggests_and_searches(page: Page, dashboard: Dashboard) -> None:
    """Typing a prefix offers the names seen; name, attribute and search filters narrow the table and live in the URL."""
    now = time.time_ns()
    failure = {"name": "exception", "time_ns": now, "attributes": {"exception.type": "ConnectionError", "exception.message": "upstream reset"}}
    feeder = Feeder(dashboard)
    try:
        feeder.send([
            trace("step_fetch", start_ns=now, attributes={"region": "eu"}),
            trace("step_parse", start_ns=now + 1, attributes={"region": "us"}),
            trace("robust_async_agent", start_ns=now + 2, events=[failure], outcome="error"),
        ])
    finally:
        feeder.close()
    page.goto(f"{dashboard.url}/traces")
    rows = page.locator("#trace-table tbody tr")
    expect(rows).to_have_count(3)

    name = page.locator("input[name='name']")
    name.fill("step_")
    expect(page.locator("#name-options option")).to_have_count(2)
    assert page.locator("#name-options option").evaluate_all("os => os.map(o => o.value)") == ["step_fetch", "step_parse"]
    name.press("Enter")
    expect(rows).to_have_count(2)
    expect(page).to_have_url(f"{dashboard.url}/traces?name=step_")

    page.locator("input[name='attr']").fill("region=us")
    page.locator("input[name='attr']").press("Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("step_parse")
    expect(page.locator("#loading")).to_be_hidden()

    page.locator("button[type='reset']").click()
    expect(rows).to_have_count(3)
    page.locator("input[name='q']").fill("upstream reset")
    page.locator("input[name='q']").press("Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("robust_async_agent")


def test_live_page_shows_storage_and_retention(page: Page, dashboard: Dashboard) -> None:
    """The Storage card: pages in use, the WAL, and the limits (none set: no size limit, 7 days)."""
    page.goto(f"{dashboard.url}/live")
    expect(page.locator("#storage-used")).to_contain_text("in use (file")
    expect(page.locator("#storage-max")).to_have_text("none")
    expect(page.locator("#storage-retention")).to_have_text("7 days")
    expect(page.locator("#storage-max-spans")).to_have_text("up to 1.0M")
