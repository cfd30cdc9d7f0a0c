"""The keyboard reaches the traces in a few keys: a skip link to the first row, and the date fields folded away."""

from __future__ import annotations

import re
import secrets
import time

from playwright.sync_api import Page, expect

from harness import Dashboard, Feeder, span

__all__: list[str] = []


def feed_two(feeder: Feeder) -> None:
    now = time.time_ns()
    feeder.send([span(secrets.token_hex(16), secrets.token_hex(8), name, now + i, now + i + 1_000_000) for i, name in enumerate(["older", "newest"])])


def tabs_until(page: Page, selector: str, limit: int) -> int:
    """Press Tab until the focused element matches `selector`; how many presses it took (fails past `limit`)."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return presses
    raise AssertionError(f"{selector} not reached in {limit} Tabs; focus is on {page.evaluate('document.activeElement.outerHTML.slice(0, 120)')}")


def test_skip_link_reaches_the_first_trace_row_in_two_tabs(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """Tab, Tab, Enter focuses the newest trace's row; Enter opens it."""
    feed_two(feeder)
    page.goto(f"{dashboard.url}/traces")
    expect(page.locator("#trace-table tbody tr")).to_have_count(2)
    assert tabs_until(page, "#skip-to-rows", 3) == 2
    expect(page.locator("#skip-to-rows")).to_be_visible()
    page.keyboard.press("Enter")
    first = page.locator("#trace-table tbody tr").first
    expect(first).to_be_focused()
    expect(first).to_contain_text("newest")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/traces/[0-9a-f]{32}$"))


def test_walking_the_filters_takes_no_date_field_stops(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """From the Name field to the first row is about ten Tabs: the folded date fields are one stop, not sixteen."""
    feed_two(feeder)
    page.goto(f"{dashboard.url}/traces")
    expect(page.locator("#trace-table tbody tr")).to_have_count(2)
    page.locator("input[name='name']").focus()
    assert tabs_until(page, "#trace-table tbody tr", 12) <= 12
    expect(page.locator("input[name='since']")).to_be_hidden()


def test_a_time_range_in_the_url_opens_the_folded_filters(page: Page, dashboard: Dashboard) -> None:
    """A shared link with since= shows the field it sets."""
    page.goto(f"{dashboard.url}/traces?since=2026-01-01T09:30:15")
    expect(page.locator("#more-filters")).to_have_attribute("open", "")
    expect(page.locator("input[name='since']")).to_have_value("2026-01-01T09:30:15")
