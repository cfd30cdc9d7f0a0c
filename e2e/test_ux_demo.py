"""`make demo`'s workload shows every page at its best: fan-out, a pipeline, retries of several causes, errors,
a blocking step, a live search and a big trace, each seen in Chromium."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from harness import Dashboard

__all__: list[str] = []

SLOW = 45_000  # ms: the rarer sights (a timed-out attempt) may take a few rounds


@pytest.fixture
def demo(dashboard: Dashboard) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "opto_dashboard.demo", "--connect", dashboard.url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and "open" in proc.stdout.readline()
    yield proc
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_demo_fills_every_page(page: Page, dashboard: Dashboard, demo: subprocess.Popen[str]) -> None:
    """The big trace, a fanned-out nested trace, three retry causes, errors, the queue, a blocking step and a search all show."""
    page.goto(f"{dashboard.url}/traces?name=nightly_batch")
    big = page.locator("#trace-table tbody tr", has_text="nightly_batch")
    expect(big).to_have_count(1, timeout=SLOW)
    expect(big.locator("td").nth(4)).to_have_text(re.compile(r"^2,\d{3}$"), timeout=SLOW)  # a few thousand spans
    page.goto(f"{dashboard.url}/traces?name=plan_trip")
    page.locator("#trace-table tbody tr a", has_text="plan_trip").first.click()
    expect(page.locator(".wf-row[data-depth='2']").first).to_contain_text("call_llm")  # plan_trip > search > call_llm
    expect(page.locator(".wf-row[data-depth='1']")).to_have_count(6)  # the fan-out: four searches, a visa check, the weather
    page.goto(f"{dashboard.url}/retries")
    causes = page.get_by_test_id("retry-cause")
    for cause in ("RateLimited: 429", "RetryableError: Temporary failure", "TimeoutError: the attempt ran past its timeout"):
        expect(causes.filter(has_text=cause).first).to_be_visible(timeout=SLOW)
    page.goto(f"{dashboard.url}/live")
    expect(page.get_by_test_id("rate-error")).not_to_have_text("0%", timeout=SLOW)
    page.goto(f"{dashboard.url}/queues")
    expect(page.locator("section.queue[data-queue='tasks']")).to_be_visible(timeout=SLOW)
    page.goto(f"{dashboard.url}/debug?kind=slow_callback")
    expect(page.locator("#debug-table tbody tr").first).to_be_visible(timeout=SLOW)
    page.goto(f"{dashboard.url}/optimize")
    expect(page.locator("#search-table tbody tr", has_text="classify").first).to_be_visible(timeout=SLOW)
