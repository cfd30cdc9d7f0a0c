"""The Traces and Trace pages as a new user meets them: live by default, honest empty and not-found states, a styled 404."""

from __future__ import annotations

import secrets
import time

from playwright.sync_api import Page, expect

from harness import Dashboard, Feeder, span

__all__: list[str] = []

MS = 1_000_000


def test_traces_table_follows_new_spans_without_ticking_anything(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """"Live update" is ticked on arrival; a running trace turns finished, and a new trace appears, with no click."""
    trace_id, root = secrets.token_hex(16), secrets.token_hex(8)
    now = time.time_ns()
    feeder.send([span(trace_id, root, "live_root", now, None)])
    page.goto(f"{dashboard.url}/traces")
    expect(page.locator("#live-toggle")).to_be_checked()
    row = page.locator(f"#trace-table tr[data-trace-id='{trace_id}']")
    expect(row).to_contain_text("running")
    feeder.send([span(trace_id, root, "live_root", now, now + 5 * MS)])
    expect(row).not_to_contain_text("running")
    expect(row).to_contain_text("5.0 ms")
    feeder.send([span(secrets.token_hex(16), secrets.token_hex(8), "second_root", now + 1, now + 2 * MS)])
    expect(page.locator("#trace-table tbody tr", has_text="second_root")).to_have_count(1)


# Counts, in the page, the live updates that brought new spans (after the page's own listeners ran)
# and the /api/traces requests made: a held table makes no request after such an update.
COUNT_UPDATES_AND_FETCHES = """
window.__updates = 0; window.__traceFetches = 0;
const NativeSocket = window.WebSocket;
window.WebSocket = class extends NativeSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (e) => {
      const m = JSON.parse(e.data);
      if (m.type === "update" && m.new_spans) setTimeout(() => { window.__updates++; });
    });
  }
};
const nativeFetch = window.fetch;
window.fetch = (url, ...rest) => { if (String(url).startsWith("/api/traces")) window.__traceFetches++; return nativeFetch(url, ...rest); };
"""


def test_unticking_live_update_holds_the_table_still(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """With the box unticked (live=0 in the URL, kept on reload) a live update makes no request; a reload shows the new trace."""
    now = time.time_ns()
    feeder.send([span(secrets.token_hex(16), secrets.token_hex(8), "first", now, now + MS)])
    page.add_init_script(COUNT_UPDATES_AND_FETCHES)
    page.goto(f"{dashboard.url}/traces")
    expect(page.locator("#trace-table tbody tr")).to_have_count(1)
    page.locator("#live-toggle").uncheck()
    expect(page).to_have_url(f"{dashboard.url}/traces?live=0")
    expect(page.locator("#loading")).to_be_hidden()
    fetches = page.evaluate("window.__traceFetches")
    feeder.send([span(secrets.token_hex(16), secrets.token_hex(8), "held_back", now + 1, now + 2 * MS)])
    page.wait_for_function("window.__updates > 0")
    assert page.evaluate("window.__traceFetches") == fetches
    expect(page.locator("#trace-table tbody tr")).to_have_count(1)
    page.reload()
    expect(page.locator("#live-toggle")).not_to_be_checked()
    expect(page.locator("#trace-table tbody tr")).to_have_count(2)


def test_empty_dashboard_and_empty_filter_say_different_things(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """An empty dashboard says how to send traces; a filter matching nothing says it matched nothing."""
    page.goto(f"{dashboard.url}/traces")
    empty = page.get_by_test_id("traces-empty")
    expect(empty).to_contain_text("No traces yet")
    expect(empty).to_contain_text("opto.configure(dashboard=")
    now = time.time_ns()
    feeder.send([span(secrets.token_hex(16), secrets.token_hex(8), "present", now, now + MS)])
    page.goto(f"{dashboard.url}/traces?name=absent")
    expect(empty).to_have_text("No traces match these filters.")


def test_unknown_trace_id_says_not_found(page: Page, dashboard: Dashboard) -> None:
    """A well-formed id the dashboard never saw answers "not found" at once, not a spinner that waits forever."""
    page.goto(f"{dashboard.url}/traces/{'ab' * 16}")
    expect(page.locator("body[data-ready='not-found']")).to_have_count(1)
    expect(page.locator("#trace-title")).to_have_text("Trace not found")
    expect(page.get_by_test_id("trace-not-found")).to_be_visible()
    expect(page.locator("#trace-summary")).not_to_contain_text("waiting")


def test_unknown_path_gets_a_404_page_in_the_apps_style(page: Page, dashboard: Dashboard) -> None:
    """/nope answers 404 with the navigation bar and stylesheet, not plain-text "Not Found"; /api/nope stays JSON."""
    response = page.goto(f"{dashboard.url}/nope")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    expect(page.locator("nav a", has_text="Traces")).to_be_visible()
    expect(page.get_by_test_id("not-found")).to_contain_text("Traces")
    assert page.locator(".topbar").evaluate("e => getComputedStyle(e).position") == "sticky"  # the stylesheet applied
    api = page.request.get(f"{dashboard.url}/api/nope")
    assert api.status == 404 and api.json()["msg"] == "not found"


def test_trace_summary_counts_errors_in_plural(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """"2 errors", "1 timeout": never "2 error"."""
    trace_id, root = secrets.token_hex(16), secrets.token_hex(8)
    now = time.time_ns()
    spans = [span(trace_id, root, "parent", now, now + 10 * MS)]
    spans += [span(trace_id, secrets.token_hex(8), "failing", now + i, now + MS, parent=root, outcome="error") for i in range(2)]
    spans.append(span(trace_id, secrets.token_hex(8), "slow", now, now + 2 * MS, parent=root, outcome="timeout"))
    feeder.send(spans)
    page.goto(f"{dashboard.url}/traces/{trace_id}")
    summary = page.locator("#trace-summary")
    expect(summary).to_contain_text("2 errors")
    expect(summary).to_contain_text("1 timeout")
    expect(summary).not_to_contain_text("1 timeouts")
