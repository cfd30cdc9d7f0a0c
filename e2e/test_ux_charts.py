"""Charts people can read: labels clear of the data, one spike not flattening the rest, sized right on
first load, histograms with a y unit, waterfall duration labels in contrast with what is behind them."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from harness import Dashboard, Feeder, Workload, span

__all__: list[str] = []

MS = 1_000_000


def test_limit_labels_sit_beside_the_plot_not_on_the_lines(page: Page, dashboard: Dashboard, workload: Callable[[str], Workload]) -> None:
    """The max_concurrent label is right of every data line and of the plot's grid, so it never covers data."""
    page.goto(f"{dashboard.url}/live")
    program = workload("concurrency")
    program.ready()
    label = page.locator("#concurrency-chart text.marker-label")
    expect(label).to_have_text("max_concurrent 4")
    expect(page.locator("#concurrency-chart path.line.dotted")).to_have_count(1)
    boxes = page.locator("#concurrency-chart").evaluate("""svg => ({
        label: svg.querySelector('text.marker-label').getBoundingClientRect().left,
        lines: Math.max(...[...svg.querySelectorAll('path.line, line.gridline')].map(e => e.getBoundingClientRect().right)),
    })""")
    assert boxes["label"] >= boxes["lines"], boxes
    program.release()
    program.finish()


def test_each_busy_function_gets_its_own_scale(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """40 calls of one function in flight do not flatten the 2 of another: each has a small chart scaled to its own peak."""
    now = time.time_ns()
    trace_id = secrets.token_hex(16)
    feeder.send([span(trace_id, secrets.token_hex(8), "spiky", now + i, None) for i in range(40)]
                + [span(trace_id, secrets.token_hex(8), "steady", now + i, None) for i in range(2)])
    page.goto(f"{dashboard.url}/live")
    steady = page.locator("#concurrency-multiples figure[data-series='steady']")
    expect(steady).to_have_attribute("data-peak", "2")
    expect(page.locator("#concurrency-multiples figure[data-series='spiky']")).to_have_attribute("data-peak", "40")
    expect(page.locator("#concurrency-chart path.line")).to_have_count(1)  # the big chart keeps the total only
    # The steady line reaches the top of its own plot instead of hugging the bottom of a shared one.
    gap = steady.locator("svg").evaluate("""svg => {
        const top = Math.min(...[...svg.querySelectorAll('line.gridline')].map(l => l.getBoundingClientRect().top));
        const bottom = Math.max(...[...svg.querySelectorAll('line.gridline')].map(l => l.getBoundingClientRect().top));
        return (svg.querySelector('path.line').getBoundingClientRect().top - top) / (bottom - top);
    }""")
    assert gap < 0.05, gap


def test_queue_charts_are_sized_right_on_first_load_with_no_data_arriving(page: Page, dashboard: Dashboard, workload: Callable[[str], Workload]) -> None:
    """After the run, nothing arrives to redraw: the charts drawn before their card was in the page still match its size."""
    program = workload("queue")
    program.ready()
    program.finish()
    page.goto(f"{dashboard.url}/queues")
    charts = page.locator(".queue svg.chart")
    expect(charts).to_have_count(3)
    page.wait_for_function("""() => [...document.querySelectorAll('.queue svg.chart')].every(svg =>
        svg.clientWidth > 150 && Number(svg.getAttribute('viewBox').split(' ')[2]) === svg.clientWidth)""")
    expect(page.locator(".queue svg[data-chart='wait'] text.axis-unit")).to_have_text("items")
    expect(page.locator(".queue svg[data-chart='put'] text.axis-unit")).to_have_text("puts")
    expect(page.locator(".queue svg[data-chart='depth'] text.axis-unit")).to_have_text("items queued")


CONTRAST = """() => {
    // Null (so the caller waits and asks again) while the waterfall is being redrawn: a label
    // replaced mid-read has no computed colours.
    const labels = [...document.querySelectorAll('.wf-dur')];
    const card = document.querySelector('.waterfall-card');
    const rgb = (c) => { const m = c && c.match(/[\\d.]+/g); return m ? m.slice(0, 4).map(Number) : null; };
    const lum = ([r, g, b]) => {
        const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
        return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const panel = card && rgb(getComputedStyle(card).backgroundColor);
    if (!panel || labels.length !== 9) return null;
    const out = [];
    for (const label of labels) {
        const style = getComputedStyle(label);
        const own = rgb(style.backgroundColor), fg = rgb(style.color);
        if (!label.isConnected || !own || !fg) return null;
        const back = own.length === 4 && own[3] === 0 ? panel : own.slice(0, 3);
        const [a, b] = [lum(fg), lum(back)].sort((x, y) => y - x);
        out.push({ text: label.textContent, inside: label.classList.contains('inside'), ratio: (a + 0.05) / (b + 0.05) });
    }
    return out;
}"""


@pytest.fixture(params=["light", "dark"])
def themed_page(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme=request.param)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def test_waterfall_duration_labels_keep_their_contrast_at_the_right_edge(themed_page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """Labels of bars that end near the right edge sit on the bar; every label keeps a 4.5:1 contrast with what is behind it."""
    trace_id, root = secrets.token_hex(16), secrets.token_hex(8)
    now = time.time_ns()
    spans = [span(trace_id, root, "root", now, now + 100 * MS)]
    for i, outcome in enumerate(["ok", "error", "timeout", "cancelled"]):
        spans.append(span(trace_id, secrets.token_hex(8), f"late-{outcome}", now + (60 + i) * MS, now + 99 * MS, parent=root, outcome=outcome))
        spans.append(span(trace_id, secrets.token_hex(8), f"early-{outcome}", now + i * MS, now + 20 * MS, parent=root, outcome=outcome))
    feeder.send(spans)
    themed_page.goto(f"{dashboard.url}/traces/{trace_id}")
    expect(themed_page.locator(".wf-row")).to_have_count(9)
    labels = themed_page.wait_for_function(CONTRAST).json_value()
    assert sum(label["inside"] for label in labels) == 5, labels  # the root and the four late ones
    low = [label for label in labels if label["ratio"] < 4.5]
    assert not low, low
