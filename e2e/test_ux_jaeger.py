"""What Jaeger's search and trace pages have, on ours: sort orders by spans and errors, a maximum
duration, a duration scatter plot, a minimap that zooms the waterfall, trace statistics."""

from __future__ import annotations

import secrets
import time
from typing import Any

from playwright.sync_api import Page, expect

from harness import Dashboard, Feeder, span

__all__: list[str] = []

MS = 1_000_000


def trace(name: str, spans: int, errors: int, start_ns: int, duration_ms: float) -> list[dict[str, Any]]:
    """A root named `name` with `spans - 1` children, the first `errors` of them failed."""
    trace_id, root = secrets.token_hex(16), secrets.token_hex(8)
    end = start_ns + int(duration_ms * MS)
    return [span(trace_id, root, name, start_ns, end), *(
        span(trace_id, secrets.token_hex(8), "step", start_ns + 1, end - 1, parent=root, outcome="error" if i < errors else "ok")
        for i in range(spans - 1))]


def feed_four(feeder: Feeder) -> int:
    t0 = time.time_ns() - 10_000 * MS
    feeder.send([*trace("small", 1, 0, t0, 5), *trace("wide", 6, 1, t0 + 1000 * MS, 50), *trace("failing", 4, 3, t0 + 2000 * MS, 2),
                 *trace("slow", 1, 0, t0 + 3000 * MS, 900)])
    return t0


def roots(page: Page) -> list[str]:
    return page.locator("#trace-table tbody tr td:nth-child(2)").all_inner_texts()


def test_spans_errors_and_duration_headers_sort_both_ways(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """Spans and Errors sort like Started and Duration (most first, then fewest); Duration twice is shortest first."""
    feed_four(feeder)
    page.goto(f"{dashboard.url}/traces")
    expect(page.locator("#trace-table tbody tr")).to_have_count(4)
    page.get_by_role("button", name="Spans").click()
    expect(page).to_have_url(f"{dashboard.url}/traces?sort=spans&order=desc")
    expect(page.locator("#trace-table tbody tr").first).to_contain_text("wide")
    expect(page.locator("th:has(button[data-sort='spans'])")).to_have_attribute("aria-sort", "descending")
    page.get_by_role("button", name="Spans").click()
    expect(page.locator("#trace-table tbody tr").last).to_contain_text("wide")
    page.get_by_role("button", name="Errors").click()
    expect(page).to_have_url(f"{dashboard.url}/traces?sort=errors&order=desc")
    expect(page.locator("#trace-table tbody tr").first).to_contain_text("failing")
    page.get_by_role("button", name="Duration").click()
    page.get_by_role("button", name="Duration").click()
    expect(page).to_have_url(f"{dashboard.url}/traces?sort=duration&order=asc")
    expect(page.locator("#trace-table tbody tr").first).to_contain_text("failing")
    page.go_back()
    expect(page.locator("#trace-table tbody tr").first).to_contain_text("slow")


def test_maximum_duration_is_a_filter_in_the_url(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """Max duration sits beside Min duration, opens from the URL, and a maximum under the minimum says which parameter is wrong."""
    feed_four(feeder)
    page.goto(f"{dashboard.url}/traces?max_duration_ms=10")
    expect(page.locator("#more-filters")).to_have_attribute("open", "")
    expect(page.locator("input[name='max_duration_ms']")).to_have_value("10")
    expect(page.locator("#trace-table tbody tr")).to_have_count(2)
    page.locator("input[name='min_duration_ms']").fill("3")
    page.locator("input[name='max_duration_ms']").fill("60")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(f"{dashboard.url}/traces?max_duration_ms=60&min_duration_ms=3")
    expect(page.locator("#trace-table tbody tr")).to_have_count(2)
    assert sorted(roots(page)) == ["small", "wide"]
    page.goto(f"{dashboard.url}/traces?min_duration_ms=60&max_duration_ms=6")
    expect(page.locator("#error")).to_contain_text("max_duration_ms: expected at least min_duration_ms")
