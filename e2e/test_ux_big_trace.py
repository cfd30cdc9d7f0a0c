"""A 10,000-span trace is navigable: collapse subtrees, find in the trace, jump between errors, each by key too."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

from playwright.sync_api import Page, expect

from harness import Dashboard, Feeder, span
from test_trace import ten_thousand_spans

__all__: list[str] = []

ROW = 26


def open_big_trace(page: Page, dashboard: Dashboard, feeder: Feeder) -> str:
    trace_id = "8" * 32
    feeder.send(ten_thousand_spans(trace_id))
    page.goto(f"{dashboard.url}/traces/{trace_id}")
    expect(page.locator("body[data-ready='trace']")).to_have_count(1)
    page.locator("#waterfall").focus()
    return trace_id


def shown_rows(page: Page) -> int:
    return round(page.locator("#wf-spacer").evaluate("e => e.getBoundingClientRect().height") / ROW)


def test_next_and_previous_error_by_key_and_button(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """e and Shift+E walk the 297 failed calls in tree order; the count says where the selection is."""
    open_big_trace(page, dashboard, feeder)
    selected = page.locator(".wf-row[aria-selected='true']")
    expect(page.get_by_test_id("error-count")).to_have_text("297 failed")
    page.keyboard.press("e")
    expect(selected).to_have_attribute("data-outcome", "error")
    expect(selected).to_contain_text("call-5")
    expect(page.get_by_test_id("error-count")).to_have_text("1 of 297 failed")
    page.keyboard.press("e")
    expect(selected).to_contain_text("call-42")
    page.keyboard.press("Shift+E")
    expect(selected).to_contain_text("call-5")
    page.keyboard.press("Shift+E")  # wraps around to the last
    expect(page.get_by_test_id("error-count")).to_have_text("297 of 297 failed")
    expect(selected).to_contain_text("call-79")
    page.get_by_role("button", name="Error ↓").click()
    expect(page.get_by_test_id("error-count")).to_have_text("1 of 297 failed")
    expect(page.locator("#detail-body h2")).to_have_text("call-5")


def test_find_in_trace_marks_matches_and_steps_through_them(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """/ focuses the find box; "call-77" matches one call per worker; Enter, n and N step through them."""
    open_big_trace(page, dashboard, feeder)
    page.keyboard.press("/")
    find = page.locator("#wf-find")
    expect(find).to_be_focused()
    find.fill("call-77")
    expect(page.get_by_test_id("find-count")).to_have_text("99 matches")
    find.press("Enter")
    selected = page.locator(".wf-row[aria-selected='true']")
    expect(selected).to_contain_text("call-77")
    expect(page.get_by_test_id("find-count")).to_have_text("1 of 99")
    first = selected.get_attribute("data-span-id")
    find.press("Enter")
    expect(page.get_by_test_id("find-count")).to_have_text("2 of 99")
    expect(selected).not_to_have_attribute("data-span-id", first or "")
    find.press("Escape")
    expect(page.locator("#waterfall")).to_be_focused()
    page.keyboard.press("N")
    expect(selected).to_have_attribute("data-span-id", first or "")
    expect(page.locator(".wf-row.match").first).to_contain_text("call-77")
    find.fill("item")  # attribute keys count: every call has opto.arg.item
    expect(page.get_by_test_id("find-count")).to_have_text("9,900 matches")


def test_subtrees_collapse_and_expand_by_key_and_click(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """← goes to the parent then collapses it (its row says how many spans and failures it hides); → and [ ] undo and redo."""
    open_big_trace(page, dashboard, feeder)
    assert shown_rows(page) == 10_000
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    selected = page.locator(".wf-row[aria-selected='true']")
    expect(selected).to_contain_text("call-0")
    page.keyboard.press("ArrowLeft")
    expect(selected).to_contain_text("worker-0")
    page.keyboard.press("ArrowLeft")
    expect(selected).to_have_attribute("aria-expanded", "false")
    expect(selected.get_by_test_id("hidden-count")).to_have_text("+100 · 3 failed")
    expect(page.locator("#wf-spacer")).to_have_attribute("style", f"height: {9_900 * ROW}px;")
    page.keyboard.press("ArrowRight")
    expect(selected).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#wf-spacer")).to_have_attribute("style", f"height: {10_000 * ROW}px;")
    page.keyboard.press("[")
    expect(page.locator("#wf-spacer")).to_have_attribute("style", f"height: {100 * ROW}px;")  # the root and its 99 workers
    page.keyboard.press("e")  # an error inside a collapsed worker opens it
    expect(selected).to_contain_text("call-5")
    expect(page.locator("#wf-spacer")).to_have_attribute("style", f"height: {200 * ROW}px;")
    page.locator(".wf-row", has_text="worker-0").locator(".wf-toggle").click()
    expect(page.locator("#wf-spacer")).to_have_attribute("style", f"height: {100 * ROW}px;")
    expect(selected).to_contain_text("worker-0")  # the selection hidden by the collapse moves to its row
    page.keyboard.press("]")
    expect(page.locator("#wf-spacer")).to_have_attribute("style", f"height: {10_000 * ROW}px;")


def test_the_keys_are_listed_on_the_page(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """The Keys disclosure names every waterfall key."""
    open_big_trace(page, dashboard, feeder)
    page.locator(".wf-keys summary").click()
    keys = page.get_by_test_id("keys")
    expect(keys).to_be_visible()
    for key in ("← →", "Space", "[ ]", "/", "e, Shift+E", "Enter n"):
        expect(keys).to_contain_text(key)


def test_a_one_span_trace_leaves_no_empty_card(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """The waterfall shrinks to its one row instead of a tall blank box."""
    trace_id = secrets.token_hex(16)
    now = time.time_ns()
    feeder.send([span(trace_id, secrets.token_hex(8), "alone", now, now + 3_000_000)])
    page.goto(f"{dashboard.url}/traces/{trace_id}")
    expect(page.locator(".wf-row")).to_have_count(1)
    expect(page.locator("#detail-body h2")).to_have_text("alone")
    box = page.locator("#waterfall").bounding_box()
    assert box is not None and box["height"] <= ROW + 8 + 1, box


def test_the_whole_trace_downloads_as_json(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """JSON saves every one of the 10,000 spans the page paged in, not only the first page."""
    trace_id = open_big_trace(page, dashboard, feeder)
    with page.expect_download() as info:
        page.get_by_role("button", name="JSON").click()
    download = info.value
    assert download.suggested_filename == f"trace-{trace_id}.json"
    saved = json.loads(Path(download.path()).read_text())
    assert saved["trace_id"] == trace_id and len(saved["spans"]) == 10_000
