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


def trace(name: str, spans: int, errors: int, start_ns: int, duration_ms: float, outcome: str = "ok") -> list[dict[str, Any]]:
    """A root named `name` ending in `outcome` with `spans - 1` children, the first `errors` of them failed."""
    trace_id, root = secrets.token_hex(16), secrets.token_hex(8)
    end = start_ns + int(duration_ms * MS)
    return [span(trace_id, root, name, start_ns, end, outcome=outcome), *(
        span(trace_id, secrets.token_hex(8), "step", start_ns + 1, end - 1, parent=root, outcome="error" if i < errors else "ok")
        for i in range(spans - 1))]


def feed_four(feeder: Feeder) -> int:
    t0 = time.time_ns() - 10_000 * MS
    feeder.send([*trace("small", 1, 0, t0, 5), *trace("wide", 6, 1, t0 + 1000 * MS, 50), *trace("failing", 4, 3, t0 + 2000 * MS, 2, "error"),
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


def test_scatter_plots_the_listed_traces_and_opens_one_on_click(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """One dot a finished row, higher for longer, failed ones in the error colour; its tooltip names
    the trace, a click opens it; the focused row outlines its dot; no label sits on a dot."""
    feed_four(feeder)
    running = secrets.token_hex(16)
    feeder.send([span(running, secrets.token_hex(8), "<b>running</b>", time.time_ns(), None)])
    page.goto(f"{dashboard.url}/traces")
    expect(page.locator("#trace-table tbody tr")).to_have_count(5)
    dots = page.locator("#trace-scatter circle.dot")
    expect(dots).to_have_count(4)  # the running trace has no duration yet
    failing = page.locator("#trace-scatter circle.dot.error")
    expect(failing).to_have_count(1)
    expect(failing.locator("title")).to_contain_text("failing: 2.0 ms, 4 spans, error")
    colours = failing.evaluate("d => [getComputedStyle(d).fill, getComputedStyle(document.querySelector('#trace-scatter circle.dot:not(.error)')).fill]")
    assert colours[0] != colours[1], colours
    heights = page.locator("#trace-scatter").evaluate("""svg => Object.fromEntries([...svg.querySelectorAll('circle.dot')].map(
        d => [d.querySelector('title').textContent.split(':')[0], Number(d.getAttribute('cy'))]))""")
    assert heights["slow"] < heights["wide"] < heights["small"] < heights["failing"], heights  # y grows upwards
    overlaps = page.locator("#trace-scatter").evaluate("""svg => {
        const hit = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
        const labels = [...svg.querySelectorAll('text')].map(t => t.getBoundingClientRect());
        return [...svg.querySelectorAll('circle.dot')].filter(d => labels.some(l => hit(l, d.getBoundingClientRect()))).length;
    }""")
    assert overlaps == 0
    row = page.locator("#trace-table tbody tr", has_text="wide")
    row.focus()
    expect(page.locator("#trace-scatter circle.dot.current")).to_have_count(1)
    wide_id = row.get_attribute("data-trace-id")
    expect(page.locator("#trace-scatter circle.dot.current")).to_have_attribute("data-trace-id", wide_id or "")
    page.locator(f"#trace-scatter circle[data-trace-id='{wide_id}']").click()
    expect(page).to_have_url(f"{dashboard.url}/traces/{wide_id}")


def test_scatter_follows_the_filters_and_hides_with_no_finished_rows(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """The plot is drawn from the rows the page shows: a filter narrows both; no finished row, no plot."""
    feed_four(feeder)
    page.goto(f"{dashboard.url}/traces?outcome=error")
    expect(page.locator("#trace-table tbody tr")).to_have_count(1)
    expect(page.locator("#trace-scatter circle.dot")).to_have_count(1)
    page.goto(f"{dashboard.url}/traces?name=absent")
    expect(page.get_by_test_id("traces-empty")).to_be_visible()
    expect(page.locator("#scatter")).to_be_hidden()
