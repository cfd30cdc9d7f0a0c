"""How long the Trace page takes to open a 10,000-span trace, against a 100-span one in the same run.

`python e2e/measure_trace_page.py [SPANS]` prints the median of 5 opens of each (ms from navigation
start to the first render of the waterfall) and their ratio; SPANS (default 10,000) sizes the big one.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from harness import Dashboard, Feeder, launch_chromium, span

__all__: list[str] = []

RUNS = 5


def flat_trace(trace_id: str, n: int) -> list[dict[str, object]]:
    """A root and n - 1 children under it, 10 ms apart."""
    t0 = time.time_ns() - 120_000_000_000
    root = f"{1:016x}"
    return [span(trace_id, root, "root", t0, t0 + n * 10_000_000)] + [
        span(trace_id, f"{i + 2:016x}", f"call-{i}", t0 + i * 10_000_000, t0 + i * 10_000_000 + 8_000_000, parent=root)
        for i in range(n - 1)
    ]


def open_ms(page: Page, url: str, trace_id: str) -> float:
    page.goto(f"{url}/traces")  # shared modules cached, as when a person clicks through
    page.goto(f"{url}/traces/{trace_id}")
    page.locator("body[data-ready='trace']").wait_for()
    return float(page.evaluate("performance.getEntriesByName('trace-rendered')[0].startTime"))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        dashboard = Dashboard(Path(tmp) / "measure.db")
        dashboard.start()
        try:
            feeder = Feeder(dashboard)
            big = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
            sizes = {100: "1" * 32, big: "2" * 32}
            for n, trace_id in sizes.items():
                feeder.send(flat_trace(trace_id, n))
            feeder.close()
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                medians = {n: statistics.median(open_ms(page, dashboard.url, t) for _ in range(RUNS)) for n, t in sizes.items()}
                browser.close()
        finally:
            dashboard.close()
    for n, ms in medians.items():
        print(f"{n:>6} spans: {ms:7.0f} ms to the first render (median of {RUNS})")
    big = max(medians)
    print(f"ratio {big:,} / 100: {medians[big] / medians[100]:.1f}x (budget: 1,500 ms for 10,000, 1,000 ms for 100,000)")


if __name__ == "__main__":
    main()
