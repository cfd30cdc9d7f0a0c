"""The Tasks page, the event loop's health and "Where is it now?" against a real instrumented program."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

import workload as workload_module
from harness import Dashboard, Workload

__all__: list[str] = []


def _line(text: str) -> int:
    lines, start = inspect.getsourcelines(workload_module.tasks)
    return start + next(i for i, line in enumerate(lines) if text in line)


def test_tasks_page_lists_live_tasks_by_site_and_says_where_one_is(page: Page, dashboard: Dashboard, workload: Callable[[str], Workload]) -> None:
    """Three parked tasks show under their creation site; "Where is it now?" names the line that awaits."""
    program = workload("tasks")
    program.ready()
    page.goto(f"{dashboard.url}/tasks")
    row = page.locator("tr[data-site*='tasks.<locals>.<listcomp>']")
    expect(row.locator("td").nth(1)).to_have_text("3")
    expect(row.locator(".oldest-task")).to_have_count(3)
    expect(page.locator("#tasks-empty")).to_be_hidden()
    row.locator(".oldest-task[data-task='parked-0']").get_by_test_id("where-button").click()
    dialog = page.get_by_test_id("where-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_test_id("where-frames")).to_contain_text(f"workload.py:{_line('# parked here')} in tasks.<locals>.parked")
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    program.release()
    program.finish()


def test_where_is_it_now_on_the_live_page_and_the_blocked_loop_on_the_debug_page(
    page: Page, dashboard: Dashboard, workload: Callable[[str], Workload],
) -> None:
    """The in-flight row of a stuck traced call answers with its await line; the loop blocked by
    time.sleep is listed with its line on the Debug page and counted on the Live page."""
    program = workload("tasks")
    program.ready()
    page.goto(f"{dashboard.url}/live")
    page.locator("#inflight-table tr[data-name='stuck_call']").get_by_test_id("where-button").click()
    expect(page.get_by_test_id("where-frames")).to_contain_text(f"workload.py:{_line('# stuck here')} in tasks.<locals>.stuck_call")
    page.get_by_role("button", name="Close").click()
    expect(page.locator("#loop-table td.num.bad")).to_have_text("1")
    expect(page.get_by_test_id("lag-p99")).not_to_have_text("–")
    page.goto(f"{dashboard.url}/debug")
    incident = page.get_by_test_id("incident")
    expect(incident).to_have_count(1)
    expect(incident).to_contain_text(re.compile(rf"workload\.py:{_line('# blocks the loop')} in tasks"))
    program.release()
    program.finish()


def test_where_is_it_now_on_a_running_span_of_the_waterfall(page: Page, dashboard: Dashboard, workload: Callable[[str], Workload]) -> None:
    program = workload("tasks")
    program.ready()
    page.goto(f"{dashboard.url}/traces?name=stuck_call")
    page.locator("#trace-table a[href^='/traces/']").first.click()  # not Open a trace file's link
    row = page.locator(".wf-row[data-outcome='inflight']")
    row.get_by_test_id("where-button").click()
    expect(page.get_by_test_id("where-frames")).to_contain_text(f"workload.py:{_line('# stuck here')}")
    program.release()
    program.finish()
