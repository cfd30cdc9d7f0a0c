"""The Live page against a real dashboard and a real traced program."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from playwright.sync_api import Page, expect

from harness import Dashboard, Feeder, Workload, span

__all__: list[str] = []


def test_in_flight_count_rises_while_calls_run_and_falls_after(page: Page, dashboard: Dashboard, workload: Callable[[str], Workload]) -> None:
    """Twelve held calls show as twelve in flight, then none once they return."""
    page.goto(f"{dashboard.url}/live")
    expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
    expect(page.get_by_test_id("in-flight-total")).to_have_text("0")
    program = workload("inflight")
    program.ready()
    expect(page.get_by_test_id("in-flight-total")).to_have_text("12")
    expect(page.locator("#inflight-table tr[data-name='held_call'] [data-testid='in-flight-count']")).to_have_text("12")
    program.release()
    program.finish()
    expect(page.get_by_test_id("in-flight-total")).to_have_text("0")
    expect(page.locator("#inflight-table tbody tr")).to_have_count(0)


def test_concurrency_chart_moves_on_while_nothing_arrives(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """Three calls started and then silence (no span, no process report): the chart's newest sample
    keeps moving and still counts the three. It once froze at the last change until a span came."""
    now = time.time_ns()
    trace_id = secrets.token_hex(16)
    feeder.send([span(trace_id, secrets.token_hex(8), "hung", now, None) for _ in range(3)])
    page.goto(f"{dashboard.url}/live")
    chart = page.locator("#concurrency-chart")
    expect(page.locator("#concurrency-legend li[data-series='total']")).to_have_attribute("data-peak", "3")
    before = int(chart.get_attribute("data-last-sample") or 0)
    page.wait_for_function(
        "min => Number(document.querySelector('#concurrency-chart').dataset.lastSample) >= min", arg=before + 2_000_000_000
    )
    expect(page.get_by_test_id("in-flight-total")).to_have_text("3")


def test_concurrency_chart_shows_max_concurrent(page: Page, dashboard: Dashboard, workload: Callable[[str], Workload]) -> None:
    """12 held calls under AsyncTraceContext(max_concurrent=4): 4 run and 8 wait for a slot; the
    function's line plateaus at the limit of 4 drawn beside it, and the waiting ones have their own line."""
    page.goto(f"{dashboard.url}/live")
    program = workload("concurrency")
    program.ready()
    row = page.locator("#inflight-table tr[data-name='limited_work']")
    expect(row.get_by_test_id("in-flight-count")).to_have_text("4")
    expect(row.get_by_test_id("waiting-count")).to_have_text("8")
    expect(page.locator("#concurrency-multiples figure[data-series='limited_work']")).to_have_attribute("data-peak", "4")
    expect(page.locator("#concurrency-legend li[data-series='waiting for a slot']")).to_have_attribute("data-peak", "8")
    expect(page.locator("#concurrency-chart path.line.dotted[data-series='waiting for a slot']")).to_have_count(1)
    expect(page.locator("#concurrency-chart line.marker[data-limit='4']")).to_have_count(1)
    expect(page.locator("#concurrency-chart text.marker-label")).to_have_text("max_concurrent 4")
    program.release()
    program.finish()
    expect(page.locator("#limits li[data-limit='4']")).to_have_attribute("data-peak", "4")
    expect(row).to_have_count(0)


def test_page_reconnects_after_dashboard_restart(page: Page, dashboard: Dashboard, workload: Callable[[str], Workload]) -> None:
    """The indicator shows the lost connection, recovers by itself, and updates flow again."""
    page.goto(f"{dashboard.url}/live")
    conn = page.locator("#conn")
    expect(conn).to_have_attribute("data-state", "connected")
    dashboard.stop()
    expect(conn).to_have_attribute("data-state", "disconnected")
    expect(conn).to_contain_text("Reconnecting")
    dashboard.start()
    expect(conn).to_have_attribute("data-state", "connected")
    program = workload("inflight")
    program.ready()
    expect(page.get_by_test_id("in-flight-total")).to_have_text("12")
    program.release()
    program.finish()


def test_the_ingest_card_counts_sdks_that_asked_for_ingest_first(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    page.goto(f"{dashboard.url}/live")
    expect(page.locator("#ingest-behind")).to_have_text("0")
    feeder.ws.send('{"type": "behind"}')  # as an SDK about to lose spans does
    feeder.send([])  # acked after the behind frame was taken: frames of a connection are taken in order
    expect(page.locator("#ingest-behind")).to_have_text("1")
