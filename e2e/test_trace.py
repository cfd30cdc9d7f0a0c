"""The Traces list and the Trace waterfall, from a real traced program and from a 10,000-span trace."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from playwright.sync_api import Page, expect

from harness import Dashboard, Feeder, Workload, span

__all__: list[str] = []


def test_trace_page_shows_nesting_retry_and_timeout(page: Page, dashboard: Dashboard, workload: Callable[[str], Workload]) -> None:
    """agent > flaky_llm > tokenize nest; the retry is marked; the timed-out call wears the timeout colour."""
    program = workload("trace")
    program.ready()
    program.finish()
    page.goto(f"{dashboard.url}/traces?name=agent")
    page.locator("#trace-table tbody a", has_text="agent").click()
    expect(page).to_have_url(re.compile(r"/traces/[0-9a-f]{32}$"))
    rows = page.locator(".wf-row")
    expect(rows).to_have_count(5)
    depth = {name: rows.filter(has_text=name).first.get_attribute("data-depth") for name in ("agent", "flaky_llm", "tokenize", "slow_tool")}
    assert depth == {"agent": "0", "flaky_llm": "1", "tokenize": "2", "slow_tool": "1"}
    llm = rows.filter(has_text="flaky_llm")
    expect(llm.locator(".wf-retry")).to_have_count(1)
    expect(llm.locator(".wf-retry")).to_have_attribute("data-attempt", "1")
    timeout_bar = rows.filter(has_text="slow_tool").locator(".wf-bar")
    expect(timeout_bar).to_have_attribute("data-outcome", "timeout")
    colour = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--timeout').trim()")
    swatch = page.locator(".legend .swatch.timeout")
    assert timeout_bar.evaluate("e => getComputedStyle(e).backgroundColor") == swatch.evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour
    llm.click()
    detail = page.locator("#detail-body")
    expect(detail.locator("h2")).to_have_text("flaky_llm")
    expect(detail).to_contain_text("Retry after attempt 1")
    expect(detail).to_contain_text("rate limited, try again")
    expect(detail).to_contain_text("'what is tracing'")


def test_waterfall_is_keyboard_navigable_and_linkable(page: Page, dashboard: Dashboard, workload: Callable[[str], Workload]) -> None:
    """Arrow keys move the selection; the selected span is in the URL and a reload restores it."""
    program = workload("trace")
    program.ready()
    program.finish()
    trace_id = dashboard.get("/api/traces?name=agent")["traces"][0]["trace_id"]
    page.goto(f"{dashboard.url}/traces/{trace_id}")
    expect(page.locator(".wf-row", has_text="slow_tool")).to_be_visible()  # drawn: keys pressed before would be lost
    page.locator("#waterfall").focus()
    page.keyboard.press("ArrowDown")
    selected = page.locator(".wf-row[aria-selected='true']")
    expect(selected).to_contain_text("flaky_llm")
    page.keyboard.press("End")
    expect(selected).to_contain_text("slow_tool")
    page.reload()
    expect(page.locator(".wf-row[aria-selected='true']")).to_contain_text("slow_tool")
    expect(page.locator("#detail-body h2")).to_have_text("slow_tool")


def ten_thousand_spans(trace_id: str) -> list[dict[str, object]]:
    """A root, 99 workers under it, and 100 calls under each: 10,000 spans, some retried, some failed."""
    t0 = time.time_ns() - 60_000_000_000
    ms = 1_000_000
    spans = [span(trace_id, f"{1:016x}", "batch", t0, t0 + 30_000 * ms)]
    n = 2
    for w in range(99):
        worker = f"{n:016x}"
        n += 1
        start = t0 + w * 200 * ms
        spans.append(span(trace_id, worker, f"worker-{w}", start, start + 10_000 * ms, parent=f"{1:016x}"))
        for c in range(100):
            cs = start + c * 100 * ms
            outcome = "error" if c % 37 == 5 else "ok"
            events = [{"name": "opto.retry", "time_ns": cs + 10 * ms, "attributes": {"opto.attempt": 1, "opto.retry.delay_s": 0.02}}] if c % 10 == 3 else []
            spans.append(span(trace_id, f"{n:016x}", f"call-{c}", cs, cs + 80 * ms, parent=worker, outcome=outcome, events=events,
                              attributes={"opto.arg.item": repr(c)}))
            n += 1
    assert len(spans) == 10_000
    return spans


def test_ten_thousand_span_trace_opens_virtualised(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """All 10,000 spans are laid out and only the visible rows are in the DOM. (How fast it opens is
    measured by e2e/measure_trace_page.py against a 100-span trace, not asserted here.)"""
    trace_id = "7" * 32
    feeder.send(ten_thousand_spans(trace_id))
    page.goto(f"{dashboard.url}/traces")
    page.locator(f"#trace-table tr[data-trace-id='{trace_id}'] a").click()  # as a person opens it
    expect(page.locator("body[data-ready='trace']")).to_have_count(1)
    expect(page.locator("#trace-summary")).to_contain_text("10,000 spans")
    assert page.locator(".wf-row").count() < 200
    page.locator("#waterfall").focus()
    page.keyboard.press("End")
    expect(page.locator(".wf-row[aria-selected='true']")).to_contain_text("call-99")
    expect(page.locator(".wf-row[aria-selected='true']")).to_have_attribute("data-depth", "2")


def test_slot_wait_is_shaded_before_the_work_it_delayed(page: Page, dashboard: Dashboard, workload: Callable[[str], Workload]) -> None:
    """Calls that waited for an AsyncTraceContext slot show the wait, then their bar starting where it ends."""
    program = workload("concurrency")
    program.ready()
    program.release()
    program.finish()
    trace_id = dashboard.get("/api/traces?name=limited_work")["traces"][0]["trace_id"]
    page.goto(f"{dashboard.url}/traces/{trace_id}")
    waited = page.locator(".wf-row", has=page.locator(".wf-wait")).filter(has_text="limited_work").last
    expect(waited).to_contain_text("limited_work")
    # The wait is also its own child span, drawn as waiting from start to end.
    expect(page.locator(".wf-row", has=page.locator(".wf-wait")).filter(has_text="opto.slot.wait")).to_have_count(8)
    wait_box = waited.locator(".wf-wait").bounding_box()
    bar_box = waited.locator(".wf-bar").bounding_box()
    assert wait_box is not None and bar_box is not None
    assert wait_box["width"] > 0
    assert abs(wait_box["x"] + wait_box["width"] - bar_box["x"]) < 1.5
    # The wait begins where the span does (inside it), on the trace's time axis.
    spans = dashboard.get(f"/api/traces/{trace_id}")["spans"]
    t0, t1 = min(s["start_ns"] for s in spans), max(s["end_ns"] for s in spans)
    start = next(s["start_ns"] for s in spans if s["span_id"] == waited.get_attribute("data-span-id"))
    track = waited.locator(".wf-track").bounding_box()
    assert track is not None
    assert abs(wait_box["x"] - (track["x"] + (start - t0) / (t1 - t0) * track["width"])) < 1.5


def test_a_link_leads_to_the_linked_span(page: Page, dashboard: Dashboard, workload: Callable[[str], Workload]) -> None:
    """A consumer's work links to the producer's span; following it opens that trace at that span."""
    program = workload("queue")
    program.ready()
    program.finish()
    trace_id = dashboard.get("/api/traces?name=handle")["traces"][0]["trace_id"]
    page.goto(f"{dashboard.url}/traces/{trace_id}")
    expect(page.locator("#detail-body h2")).to_have_text("handle")
    expect(page.locator(".wf-row .wf-wait")).to_have_count(1)  # the item's wait in the queue, before the span
    page.locator("#detail-body a[data-link-span]").first.click()
    expect(page.locator(".wf-row[aria-selected='true']")).to_contain_text("produce")
    expect(page.locator("#detail-body h2")).to_have_text("produce")
