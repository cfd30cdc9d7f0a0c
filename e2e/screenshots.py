"""`make screenshots`: regenerate docs/images/*.png, every page of the dashboard fed by `make demo`'s workload
(and, for the Optimization page, `examples/optimize_prompt.py`).

A fresh dashboard on a temporary database receives the demo workload for a while, so the charts
have history, then Chromium photographs each page in the light theme, Live and Trace in dark, and
Traces and Trace at a phone's 390 px.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from harness import Dashboard, launch_chromium

__all__: list[str] = []

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "images"
FEED_S = 20  # seconds of demo traffic before the first picture: enough history for the charts
VIEWPORT = {"width": 1440, "height": 900}


def interesting_trace(dashboard: Dashboard) -> str:
    """A finished trip plan with the most retries and failures among the recent ones: the richest small waterfall."""
    traces = dashboard.get("/api/traces?name=plan_trip&limit=200")["traces"]
    done = [t for t in traces if not t["in_flight"]] or traces
    return max(done, key=lambda t: (t["retry_count"] + t["error_count"], t["span_count"]))["trace_id"]


def shoot(page: Page, url: str, name: str, ready: str, keys: str = "") -> None:
    page.goto(url)
    page.locator(ready).first.wait_for()
    page.wait_for_load_state("networkidle")
    for key in keys.split():  # keys pressed on the page first, e.g. the waterfall's "[ e"
        page.keyboard.press(key)
    page.screenshot(path=str(OUT / f"{name}.png"))
    print(f"docs/images/{name}.png")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        dashboard = Dashboard(Path(tmp) / "demo.db")
        dashboard.start()
        demo = subprocess.Popen([sys.executable, "-m", "opto_dashboard.demo", "--connect", dashboard.url], stdout=subprocess.DEVNULL)
        try:
            # The prompt-search example streams its search to the dashboard: the Optimization pages' content.
            example = [sys.executable, str(ROOT / "examples" / "optimize_prompt.py")]
            subprocess.run(example, env={**os.environ, "OPTO_DASHBOARD_URL": dashboard.url}, stdout=subprocess.DEVNULL, check=True)
            time.sleep(FEED_S)  # a duration of traffic, not a synchronisation
            trace_id = interesting_trace(dashboard)
            big = dashboard.get("/api/traces?name=nightly_batch")["traces"][0]["trace_id"]
            search = dashboard.get("/api/optimize")["searches"][0]
            pages = [
                ("live", "/live", "#inflight-table tbody tr"),
                ("traces", "/traces", "#trace-table tbody tr"),
                ("trace", f"/traces/{trace_id}", "body[data-ready]"),
                ("trace-big", f"/traces/{big}", "body[data-ready='trace']", "[ e"),
                ("trace-flame", f"/traces/{big}", "body[data-ready='trace']", "f"),
                ("queues", "/queues", "section.queue"),
                ("retries", "/retries", "#retry-table tbody tr"),
                ("debug", "/debug", "#debug-table tbody tr"),
                ("metrics", "/metrics", "#metrics section"),
                ("optimize", f"/optimize/{search['trace_id']}/{search['span_id']}", "body[data-ready]"),
                ("searches", "/optimize", "#search-table tbody tr"),
                ("not-found", "/nope", "[data-testid='not-found']"),
            ]
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                for scheme in ("light", "dark"):
                    page = browser.new_page(viewport=VIEWPORT, color_scheme=scheme, device_scale_factor=1)
                    for name, path, ready, *keys in pages:
                        if scheme == "light" or name in ("live", "trace"):
                            shoot(page, dashboard.url + path, name if scheme == "light" else f"{name}-dark", ready, *keys)
                    page.close()
                phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=1)
                for name, path, ready, *keys in pages[1:3]:
                    shoot(phone, dashboard.url + path, f"{name}-390", ready, *keys)
                phone.close()
                browser.close()
        finally:
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(timeout=20)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait()
            dashboard.close()


if __name__ == "__main__":
    main()
