"""Words and numbers that say what they mean: retry figures, what Live's errors count, a timeout's cause, the CPU
caveat, creation stacks with the user's frames first, and long attribute keys readable whole."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time

from playwright.sync_api import Page, expect

from harness import HERE, Dashboard, Feeder, span

__all__: list[str] = []

MS = 1_000_000
USER_FRAME = '  File "/home/me/app/agents.py", line 42, in plan_trip\n    task = asyncio.create_task(book(hotel))'
STACK = "\n".join([
    '  File "/usr/lib/python3.11/runpy.py", line 198, in _run_module_as_main\n    return _run_code(code, main_globals, None,',
    '  File "/usr/lib/python3.11/asyncio/runners.py", line 118, in run\n    return self._loop.run_until_complete(task)',
    '  File "/usr/lib/python3.11/asyncio/base_events.py", line 640, in run_until_complete\n    self.run_forever()',
    '  File "/usr/lib/python3.11/asyncio/events.py", line 80, in _run\n    self._context.run(self._callback, *self._args)',
    USER_FRAME,
]) + "\n"


def test_retries_explain_their_denominators_and_a_timeout_has_a_cause(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """A call retried twice reads 2.00 retries per call (not 200 %); the timed-out attempt's cause is spelled out."""
    now = time.time_ns()
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    retry = {"opto.attempt": 1, "opto.retry.delay_s": 0.1, "exception.type": "TimeoutError", "exception.message": ""}
    again = {"opto.attempt": 2, "opto.retry.delay_s": 0.2, "exception.type": "app.errors.Overloaded", "exception.message": "busy"}
    feeder.send([span(trace_id, span_id, "fetch", now, now + 500 * MS, attributes={"opto.attempts": 3},
                      events=[{"name": "opto.retry", "time_ns": now + 100 * MS, "attributes": retry},
                              {"name": "opto.retry", "time_ns": now + 300 * MS, "attributes": again}])])
    page.goto(f"{dashboard.url}/retries")
    expect(page.locator("#function-table thead")).to_contain_text("Retries per call")
    expect(page.locator("#function-table tbody tr").first).to_contain_text("2.00")
    expect(page.locator(".subtitle")).to_contain_text("a call retried twice counts 2")
    causes = page.get_by_test_id("retry-cause")
    expect(causes).to_have_count(2)
    expect(causes.nth(1)).to_have_text("TimeoutError: the attempt ran past its timeout")
    expect(causes.nth(0)).to_have_text("app.errors.Overloaded: busy")
    page.goto(f"{dashboard.url}/traces/{trace_id}")
    expect(page.locator("#detail-body .event.retry").first).to_contain_text("TimeoutError: the attempt ran past its timeout")


def test_live_errors_count_traced_calls_only_and_say_so(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """Two traced calls, one failed, beside three third-party HTTP 503 spans: Errors reads 50 %, and its tooltip says what it counts."""
    now = time.time_ns()
    http = span(secrets.token_hex(16), secrets.token_hex(8), "GET /inventory", now, now + MS, outcome="error")
    del http["attributes"]["opto.outcome"]  # an HTTP client's span: no opto outcome, an error status
    http["attributes"]["http.response.status_code"] = 503
    feeder.send([
        span(secrets.token_hex(16), secrets.token_hex(8), "agent", now, now + MS),
        span(secrets.token_hex(16), secrets.token_hex(8), "agent", now, now + MS, outcome="error"),
        *({**http, "span_id": secrets.token_hex(8), "trace_id": secrets.token_hex(16)} for _ in range(3)),
    ])
    page.goto(f"{dashboard.url}/live")
    expect(page.get_by_test_id("rate-error")).to_have_text("50%")
    tile = page.locator(".stat", has=page.get_by_test_id("rate-error"))
    expect(tile).to_have_attribute("title", re.compile(r"spans with opto\.outcome"))
    expect(page.locator(".stat", has=page.get_by_test_id("rate-retry"))).to_contain_text("Retried calls")


def test_cpu_time_carries_its_concurrency_caveat(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """The Metrics page says that CPU time of blocks open together adds up past the CPU used."""
    now = time.time_ns()
    summary = {"name": "opto.metrics.summary", "time_ns": now, "attributes": {"opto.metrics.name": "agents"},
               "summary": {"count": 8, "cpu_s": 4.4, "duration_p50_s": 0.5}}
    feeder.send([], [summary])
    page.goto(f"{dashboard.url}/metrics")
    expect(page.get_by_test_id("note-cpu_s")).to_contain_text("blocks open at the same time")


def test_creation_stack_shows_the_users_frame_first(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """runpy and asyncio frames fold away behind a disclosure; the user's line is the first thing shown."""
    trace_id = secrets.token_hex(16)
    now = time.time_ns()
    feeder.send([span(trace_id, secrets.token_hex(8), "book", now, now + MS, attributes={"opto.debug.creation_stack": STACK})])
    page.goto(f"{dashboard.url}/traces/{trace_id}")
    mine = page.locator("#detail-body").get_by_test_id("user-frames")
    expect(mine).to_have_text(USER_FRAME)
    folded = page.locator("#detail-body .stack details")
    expect(folded.locator("summary")).to_contain_text("4 frames of runpy, asyncio and opto folded")
    expect(folded.locator("pre")).to_be_hidden()


def test_long_attribute_keys_are_readable_whole(page: Page, dashboard: Dashboard, feeder: Feeder) -> None:
    """A long key wraps in the detail panel instead of being cut with an ellipsis."""
    key = "app.request.headers.x-very-long-custom-header-name-for-tracing.value"
    trace_id = secrets.token_hex(16)
    now = time.time_ns()
    feeder.send([span(trace_id, secrets.token_hex(8), "handler", now, now + MS, attributes={key: "v"})])
    page.goto(f"{dashboard.url}/traces/{trace_id}")
    cell = page.locator("#detail-body td", has_text="x-very-long").first
    expect(cell).to_have_text(key)
    assert cell.evaluate("c => c.scrollWidth <= c.clientWidth"), "the key is cut off"


def test_candidate_prompts_are_readable_whole(page: Page, dashboard: Dashboard) -> None:
    """The prompt search's long instructions show in full on their candidate cards (wrapped, not cut to one line)."""
    example = [sys.executable, str(HERE.parent / "examples" / "optimize_prompt.py")]
    subprocess.run(example, env={**os.environ, "OPTO_DASHBOARD_URL": dashboard.url}, stdout=subprocess.DEVNULL, check=True, timeout=60)
    search = dashboard.get("/api/optimize")["searches"][0]
    page.goto(f"{dashboard.url}/optimize/{search['trace_id']}/{search['span_id']}")
    prompt = page.locator(".cand-params dd", has_text="Answer with one word").first
    whole = "'Classify the review. Answer with one word: positive or negative.'"  # the parameter's repr
    expect(prompt).to_have_text(whole)
    assert prompt.evaluate("d => d.scrollHeight <= d.clientHeight + 1 && d.scrollWidth <= d.clientWidth + 1"), "the prompt is cut off"
    expect(prompt).to_have_attribute("title", whole)
