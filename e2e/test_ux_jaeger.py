"""What Jaeger's search and trace pages have, on ours: sort orders by spans and errors, a maximum
duration, a duration scatter plot, a minimap that zooms the waterfall, trace statistics."""

from __future__ import annotations

import secrets
import time
from typing import Any

from playwright.sync_api import Page, expect

from harness import Dashboard, Feeder, span
from test_trace import ten_thousand_spans

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


def open_big_trace(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """The 10,000-span trace of test_trace (30 s: 99 workers of 100 calls), opened with the waterfall focused."""
    feeder.send(ten_thousand_spans("9" * 32))
    page.goto(f"{dashboard.url}/traces/{'9' * 32}")
    expect(page.locator("body[data-ready='trace']")).to_have_count(1)
    expect(page.locator("#wf-mini-canvas")).to_have_attribute("data-spans", "10000")
    page.locator("#waterfall").focus()


def shown_range(page: Page) -> list[float]:
    """The minimap's range as shares of the trace ([] while the whole trace shows)."""
    value = page.locator("#wf-minimap").get_attribute("data-range") or ""
    return [float(x) for x in value.split(",")] if value else []


def bar_share(page: Page, name: str) -> list[float]:
    """Where `name`'s bar starts and ends, as shares of its track's width."""
    return page.locator(".wf-row", has_text=name).first.evaluate("""row => {
        const track = row.querySelector('.wf-track').getBoundingClientRect();
        const bar = row.querySelector('.wf-bar').getBoundingClientRect();
        return [(bar.left - track.left) / track.width, (bar.right - track.left) / track.width];
    }""")


def test_minimap_drag_zooms_the_waterfall_and_reset_shows_it_all(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """Dragging across the first tenth of the strip zooms the time axis to the trace's first 3 s; a
    drag inside the range moves it; Reset zoom goes back to the whole trace."""
    open_big_trace(page, dashboard, feeder)
    expect(page.locator("#wf-axis span").nth(1)).to_have_text("7.50 s")
    strip = page.locator("#wf-minimap").bounding_box()
    assert strip is not None
    y = strip["y"] + strip["height"] / 2
    page.mouse.move(strip["x"] + 1, y)
    page.mouse.down()
    page.mouse.move(strip["x"] + strip["width"] * 0.1, y, steps=4)
    page.mouse.up()
    expect(page.locator("#wf-mini-window")).to_be_visible()
    start, end = shown_range(page)
    assert start < 0.002 and abs(end - 0.1) < 0.005, (start, end)
    expect(page.get_by_test_id("zoom-range")).to_contain_text(" – 3.00 s")
    axis = page.locator("#wf-axis span").all_inner_texts()
    assert axis[2].endswith(" s") and 1.4 < float(axis[2].split()[0]) < 1.6, axis  # half of the first 3 s
    left, right = bar_share(page, "call-5")  # 500 to 580 ms into the 30 s trace
    assert abs(left - (0.5 / 30 - start) / (end - start)) < 0.01 and abs(right - (0.58 / 30 - start) / (end - start)) < 0.01, (left, right)
    window = page.locator("#wf-mini-window").bounding_box()
    assert window is not None
    page.mouse.move(window["x"] + window["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(window["x"] + window["width"] / 2 + strip["width"] * 0.2, y, steps=4)
    page.mouse.up()
    moved = shown_range(page)
    assert abs(moved[0] - start - 0.2) < 0.005 and abs(moved[1] - moved[0] - (end - start)) < 0.001, moved
    page.get_by_role("button", name="Reset zoom").click()
    expect(page.locator("#wf-mini-window")).to_be_hidden()
    expect(page.locator("#wf-axis span").nth(1)).to_have_text("7.50 s")
    expect(page.get_by_role("button", name="Reset zoom")).to_be_disabled()


def test_zoom_keys_narrow_move_and_reset_the_range(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """w and s zoom in and out around the middle, a and d move by a quarter, z zooms to the selected span, 0 resets; all are listed under Keys."""
    open_big_trace(page, dashboard, feeder)
    page.keyboard.press("w")
    page.wait_for_function("document.querySelector('#wf-minimap').dataset.range === '0.2500,0.7500'")
    page.keyboard.press("a")
    page.wait_for_function("document.querySelector('#wf-minimap').dataset.range === '0.1250,0.6250'")
    page.keyboard.press("d")
    page.keyboard.press("d")
    page.wait_for_function("document.querySelector('#wf-minimap').dataset.range === '0.3750,0.8750'")
    page.keyboard.press("s")
    page.wait_for_function("document.querySelector('#wf-minimap').dataset.range === '0.1250,1.0000'")
    page.keyboard.press("0")
    page.wait_for_function("document.querySelector('#wf-minimap').dataset.range === ''")
    page.keyboard.press("e")  # the first failure: call-5 of worker-0, 500 to 580 ms
    expect(page.locator(".wf-row[aria-selected='true']")).to_contain_text("call-5")
    page.keyboard.press("z")
    page.wait_for_function("document.querySelector('#wf-minimap').dataset.range !== ''")
    left, right = bar_share(page, "call-5")
    assert abs(left - 0.05 / 1.1) < 0.01 and abs(right - 1.05 / 1.1) < 0.01, (left, right)
    page.get_by_text("Keys", exact=True).click()
    keys = page.get_by_test_id("keys")
    for listed in ("w s", "a d", "z", "0"):
        expect(keys.locator("dt", has_text=listed).first).to_be_visible()


def stats_row(page: Page, name: str) -> list[str]:
    return page.locator("#stats-table tbody tr", has=page.locator(f"td:text-is('{name}')")).locator("td").all_inner_texts()


def test_statistics_tab_sums_durations_and_self_time_per_span_name(page: Page, dashboard: Dashboard, feeder: Feeder, dialogs: list[str]) -> None:
    """Per name: count (with those running), errors, total, average, min, max and self time (what no
    child covers: overlapping children count once); names are text; a click on one finds its spans."""
    trace_id, root = secrets.token_hex(16), secrets.token_hex(8)
    t0 = time.time_ns() - 60_000 * MS
    hostile = "<img src=x onerror=alert(1)>"
    feeder.send([
        span(trace_id, root, "job", t0, t0 + 100 * MS),
        span(trace_id, secrets.token_hex(8), "fetch", t0 + 10 * MS, t0 + 30 * MS, parent=root),
        span(trace_id, secrets.token_hex(8), "fetch", t0 + 20 * MS, t0 + 50 * MS, parent=root),
        span(trace_id, secrets.token_hex(8), "fetch", t0 + 60 * MS, t0 + 70 * MS, parent=root, outcome="error"),
        span(trace_id, secrets.token_hex(8), "parse", t0 + 80 * MS, None, parent=root),
        span(trace_id, secrets.token_hex(8), hostile, t0 + 1 * MS, t0 + 2 * MS, parent=root),
    ])
    page.goto(f"{dashboard.url}/traces/{trace_id}")
    expect(page.locator(".wf-row")).to_have_count(6)
    page.get_by_role("tab", name="Statistics").click()
    expect(page.get_by_role("tab", name="Statistics")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#waterfall")).to_be_hidden()
    expect(page.locator("#stats-table tbody tr")).to_have_count(4)
    assert stats_row(page, "fetch") == ["fetch", "3", "1", "60.0 ms", "20.0 ms", "10.0 ms", "30.0 ms", "60.0 ms", "20.0 ms", "40.0 ms"]
    # 100 ms less the children's union: 1-2, 10-50 (two fetches overlapping), 60-70 and the running parse from 80 ms on.
    assert stats_row(page, "job")[7] == "29.0 ms"
    assert stats_row(page, "parse")[:4] == ["parse", "1 (1 running)", "–", "–"]
    assert stats_row(page, hostile)[0] == hostile
    expect(page.get_by_test_id("stats-note")).to_contain_text("4 span names in 6 spans")
    expect(page.locator("#stats-table tbody tr").first).to_contain_text("job")  # by total, longest first
    page.get_by_role("button", name="Count").click()
    expect(page.locator("#stats-table tbody tr").first).to_contain_text("fetch")
    page.get_by_role("button", name="Count").click()
    expect(page.locator("#stats-table tbody tr").first).not_to_contain_text("fetch")
    page.locator("#stats-table tbody td", has_text="fetch").click()
    expect(page.locator("#waterfall")).to_be_visible()
    expect(page.locator("#wf-find")).to_have_value("fetch")
    expect(page.get_by_test_id("find-count")).to_have_text("1 of 3")
    expect(page.locator(".wf-row[aria-selected='true']")).to_contain_text("fetch")
    page.locator("#waterfall").focus()
    page.keyboard.press("t")
    expect(page.locator("#wf-stats")).to_be_visible()
    page.keyboard.press("t")
    expect(page.locator("#waterfall")).to_be_visible()
    assert dialogs == []


def test_statistics_of_a_ten_thousand_span_trace(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """All 10,000 spans are counted: 99 of each call, call-5 failing in every worker."""
    open_big_trace(page, dashboard, feeder)
    page.keyboard.press("t")
    expect(page.get_by_test_id("stats-note")).to_contain_text("200 span names in 10,000 spans")
    assert stats_row(page, "call-5")[:3] == ["call-5", "99", "99"]
    assert stats_row(page, "call-6")[1:4] == ["99", "–", "7.92 s"]


DRAW_SPIKE = """async (clip) => {
    const { clipAbove, lineChart } = await import("/static/charts.js");
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "chart");
    document.querySelector("main").append(svg);
    const values = Array.from({ length: 100 }, (_, i) => (i === 50 ? 40 : 2 + (i % 3)));
    const top = clip ? clipAbove(values) : null;
    lineChart(svg, { series: [{ name: "total", color: "red", points: values.map((v, i) => [i, v]) }], x0: 0, x1: 99,
                     formatX: (x) => `t${x}`, unit: "calls", clip: top });
    const grid = [...svg.querySelectorAll("line.gridline")].map((l) => Number(l.getAttribute("y1")));
    const box = svg.getBoundingClientRect();
    const note = svg.querySelector(".clip-note");
    const result = {
        top, dataClip: svg.dataset.clip, labels: [...svg.querySelectorAll("text.axis-label")].map((t) => t.textContent),
        marks: [...svg.querySelectorAll("path.clipped title")].map((t) => t.textContent),
        usualShare: (() => {  // how high the usual values' top (4, at x = 11) stands in the plot
            const y = Number(svg.querySelector("path.line").getAttribute("d").split(/[ML]/)[12].split(",")[1]);
            return (Math.max(...grid) - y) / (Math.max(...grid) - Math.min(...grid));
        })(),
        noteAbovePlot: note ? note.getBoundingClientRect().bottom <= box.top + Math.min(...grid) : null,
        note: note?.textContent ?? null,
    };
    svg.remove();
    return result;
}"""


def test_one_spike_tops_out_the_scale_instead_of_flattening_the_line(page: Page, dashboard: Dashboard) -> None:
    """With a spike of 40 among values of 2 to 4, the scale stops at 1.5 times the 90th percentile (6):
    the usual values fill the plot, the spike is drawn at the top with a ▲ naming its value, a note above the plot says so."""
    page.goto(f"{dashboard.url}/live")
    flat = page.evaluate(DRAW_SPIKE, False)
    assert flat["dataClip"] == "" and flat["labels"][:5] == ["0", "10", "20", "30", "40"] and flat["marks"] == []
    clipped = page.evaluate(DRAW_SPIKE, True)
    assert clipped["top"] == 6 and clipped["dataClip"] == "6", clipped
    assert clipped["marks"] == ["total: 40 at t50"], clipped
    assert clipped["note"] == "▲ above 6, peak 40" and clipped["noteAbovePlot"], clipped
    assert flat["usualShare"] == 0.1 and clipped["usualShare"] > 0.66, (flat, clipped)  # the usual values' top: a tenth of the plot, then two thirds


# The server samples concurrency every tick whether or not it pushes: this waits, in the page, until
# its samples hold a spike of 42 (`rare` false) or until that spike is followed by ten times as many
# samples of 2 (`rare` true). Polled every 250 ms (the sampling period), for at most 60 s.
WAIT_FOR_SAMPLES = """async (rare) => {
    const deadline = Date.now() + 60000;
    for (;;) {
        const totals = (await (await fetch('/api/live')).json()).concurrency.map((p) => p.total);
        const after = totals.length - 1 - totals.lastIndexOf(42);
        const spikes = totals.filter((t) => t === 42).length;
        if (spikes && (!rare || (after >= 10 * spikes && totals.slice(-after).every((t) => t === 2)))) return totals.length;
        if (Date.now() > deadline) throw new Error(`samples never settled: ${totals}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
    }
}"""


def test_live_concurrency_chart_clips_a_spike_and_marks_it(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """Two calls in flight, then forty more for a moment: once the spike is rare among the samples,
    the next update tops the scale out above the usual two, and the ▲'s tooltip gives the spike's value."""
    now = time.time_ns()
    trace_id = secrets.token_hex(16)
    feeder.send([span(trace_id, secrets.token_hex(8), "steady", now + i, None) for i in range(2)])
    page.goto(f"{dashboard.url}/live")
    expect(page.get_by_test_id("concurrency-peak")).to_have_text("2")
    spike = [span(trace_id, secrets.token_hex(8), "spiky", now + 10 + i, None) for i in range(40)]
    feeder.send(spike)
    page.evaluate(WAIT_FOR_SAMPLES, False)
    feeder.send([{**s, "state": "ended", "end_ns": now + 1_000_000, "attributes": {"opto.outcome": "ok"}} for s in spike])
    page.evaluate(WAIT_FOR_SAMPLES, True)
    feeder.send([span(secrets.token_hex(16), secrets.token_hex(8), "nudge", now, now + 1)])  # new spans: an update is pushed
    page.wait_for_function("document.querySelector('#concurrency-chart').dataset.clip === '3'")
    expect(page.locator("#concurrency-chart path.clipped title").first).to_contain_text("total: 42")
    expect(page.locator("#concurrency-chart .clip-note")).to_have_text("▲ above 3, peak 42")
    expect(page.get_by_test_id("concurrency-peak")).to_have_text("42")


def job(trace_id: str, t0: int, children: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """A 100 ms root `job` and children of (name, ms), one after another."""
    root = secrets.token_hex(8)
    spans, at = [span(trace_id, root, "job", t0, t0 + 100 * MS)], t0
    for name, ms in children:
        spans.append(span(trace_id, secrets.token_hex(8), name, at, at + ms * MS, parent=root))
        at += ms * MS
    return spans


def test_compare_two_traces_side_by_side_per_span_name(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """The Statistics tab compares with another trace (offered: the latest of the same root name):
    counts, errors, average and total per name for both, with the change, largest first; kept in the URL."""
    a, b = secrets.token_hex(16), secrets.token_hex(16)
    t0 = time.time_ns() - 60_000 * MS
    feeder.send(job(a, t0, [("fetch", 20), ("fetch", 30), ("fetch", 10), ("parse", 5)]) + job(b, t0 + 1000 * MS, [("fetch", 40), ("fetch", 40), ("store", 7)]))
    page.goto(f"{dashboard.url}/traces/{a}")
    expect(page.locator(".wf-row")).to_have_count(5)
    page.get_by_role("tab", name="Statistics").click()
    page.locator("#compare-id").focus()
    expect(page.locator("#compare-options option")).to_have_count(1)
    expect(page.locator("#compare-options option")).to_have_attribute("value", b)
    page.locator("#compare-id").fill(b)
    page.get_by_role("button", name="Compare", exact=True).click()
    expect(page.get_by_test_id("compare-info")).to_have_text("with job (4 spans)")
    expect(page).to_have_url(f"{dashboard.url}/traces/{a}?compare={b}")
    rows = page.locator("#compare-table tbody tr")
    expect(rows).to_have_count(4)
    assert rows.nth(0).locator("td").all_inner_texts() == ["fetch", "3", "2", "−1", "0", "0", "20.0 ms", "40.0 ms", "+20.0 ms", "60.0 ms", "80.0 ms", "+20.0 ms"]
    assert rows.nth(1).locator("td").all_inner_texts()[:4] == ["store (other only)", "–", "1", "+1"]
    assert rows.nth(2).locator("td").all_inner_texts()[-3:] == ["5.0 ms", "–", "−5.0 ms"]
    assert rows.nth(3).locator("td").all_inner_texts()[-1] == "0"  # the two roots last the same
    page.reload()
    expect(page.locator("#compare-table tbody tr")).to_have_count(4)
    expect(page.get_by_role("tab", name="Statistics")).to_have_attribute("aria-selected", "true")
    page.get_by_role("button", name="Stop comparing").click()
    expect(page.locator("#stats-table")).to_be_visible()
    expect(page.locator("#compare-table")).to_be_hidden()
    expect(page).to_have_url(f"{dashboard.url}/traces/{a}")
    page.locator("#compare-id").fill("0" * 32)
    page.get_by_role("button", name="Compare", exact=True).click()
    expect(page.get_by_test_id("compare-info")).to_have_text(f"no trace {'0' * 32} is stored")
    expect(page.locator("#stats-table")).to_be_visible()


def test_traces_list_picks_two_traces_to_compare(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """A row's box or c on a focused row picks it (a third pick drops the first); Compare opens the
    first trace comparing it with the second."""
    ids = [secrets.token_hex(16) for _ in range(3)]
    t0 = time.time_ns() - 60_000 * MS
    feeder.send([s for i, trace_id in enumerate(ids) for s in job(trace_id, t0 + i * 1000 * MS, [("fetch", 10 + i)])])
    page.goto(f"{dashboard.url}/traces")
    rows = page.locator("#trace-table tbody tr")
    expect(rows).to_have_count(3)
    compare = page.locator("#compare")
    expect(compare).to_have_text("Compare 0 of 2")
    expect(compare).to_be_disabled()
    rows.nth(2).locator("input.pick").check()
    expect(page).to_have_url(f"{dashboard.url}/traces")  # ticking a box does not open the trace
    expect(compare).to_have_text("Compare 1 of 2")
    rows.nth(1).focus()
    page.keyboard.press("c")
    rows.nth(0).focus()
    page.keyboard.press("c")  # a third pick: the first one (row 2) drops
    expect(rows.nth(2).locator("input.pick")).not_to_be_checked()
    expect(rows.nth(1).locator("input.pick")).to_be_checked()
    expect(compare).to_be_enabled()
    compare.click()
    expect(page).to_have_url(f"{dashboard.url}/traces/{ids[1]}?compare={ids[2]}")
    expect(page.locator("#compare-table tbody tr")).to_have_count(2)
    expect(page.get_by_test_id("compare-info")).to_have_text("with job (2 spans)")
