"""Every page runs under the Content-Security-Policy with no violation: scripts, the import map, styles and the live socket."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from harness import Dashboard, Workload

__all__: list[str] = []

PAGES = ["/", "/live", "/traces", "/queues", "/retries", "/debug", "/metrics", "/optimize", "/tasks", "/traces/file"]
# Runs before any page script: collects the browser's own report of each blocked resource.
WATCH = "window.__violations = []; document.addEventListener('securitypolicyviolation', e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"


def test_pages_load_with_no_policy_violation(page: Page, dashboard: Dashboard, workload: Callable[[str], Workload]) -> None:
    """Each page, and a trace's waterfall, renders its data with no CSP report in the console or as an event."""
    program = workload("trace")
    program.ready()
    program.finish()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text) if message.type in ("error", "warning") else None)
    page.add_init_script(WATCH)
    trace_id = dashboard.get("/api/traces?name=agent")["traces"][0]["trace_id"]
    for path in [*PAGES, f"/traces/{trace_id}"]:
        response = page.goto(dashboard.url + path)
        assert response is not None and "frame-ancestors 'none'" in response.headers["content-security-policy"]
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.__violations") == [], path
    expect(page.locator(".wf-row")).to_have_count(5)  # the waterfall drew: its modules ran under the policy
    page.locator("#waterfall").focus()
    for key, drawn in (("c", ".wf-crit"), ("t", "#stats-table tbody tr"), ("f", "#flame-svg .fg-box"), ("g", ".tg-node")):
        page.keyboard.press(key)  # critical path, statistics, flamegraph, graph: each places boxes by their style
        expect(page.locator(drawn).first).to_be_attached()
        assert page.evaluate("window.__violations") == [], key
    assert not [text for text in console if "Content Security Policy" in text], console


def test_an_injected_style_attribute_is_blocked_and_reported(page: Page, dashboard: Dashboard) -> None:
    """Markup cannot style the page (a telemetry string that reached markup could not hide or
    overlay anything); the scripts' own positions go through the CSSOM, which is allowed."""
    page.add_init_script(WATCH)
    page.goto(dashboard.url + "/traces")
    page.evaluate("document.body.insertAdjacentHTML('beforeend', '<p id=injected style=\"display:none\">x</p>')")
    expect(page.locator("#injected")).to_be_visible()
    assert page.evaluate("window.__violations") == ["style-src-attr inline"]
    page.evaluate("document.getElementById('injected').style.display = 'none'")
    expect(page.locator("#injected")).to_be_hidden()


def test_an_injected_inline_script_is_blocked_and_reported(page: Page, dashboard: Dashboard) -> None:
    """The check above can fail: inline script added to a page does not run, and the browser reports it."""
    page.add_init_script(WATCH)
    page.goto(dashboard.url + "/traces")
    page.evaluate("const s = document.createElement('script'); s.textContent = 'window.__ran = true'; document.body.append(s)")
    assert page.evaluate("window.__ran") is None
    assert page.evaluate("window.__violations") == ["script-src-elem inline"]
