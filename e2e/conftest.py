"""Fixtures of the browser suite: one Chromium per session, a fresh page, dashboard and workload per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Page, sync_playwright

from harness import Dashboard, Feeder, Workload, launch_chromium

__all__: list[str] = []


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


class Dialogs(list[str]):
    """Messages of every JavaScript dialog a page opened (an XSS payload would open one)."""


@pytest.fixture
def dialogs() -> Dialogs:
    return Dialogs()


@pytest.fixture
def page(browser: Browser, dialogs: Dialogs) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Dashboard]:
    server = Dashboard(tmp_path / "dashboard.db")
    server.start()
    yield server
    server.close()


@pytest.fixture
def workload(dashboard: Dashboard) -> Iterator[Callable[[str], Workload]]:
    """Start `workload.py` scenarios; each is killed at teardown if still running."""
    started: list[Workload] = []

    def start(scenario: str) -> Workload:
        started.append(Workload(dashboard, scenario))
        return started[-1]

    yield start
    for w in started:
        w.kill()


@pytest.fixture
def feeder(dashboard: Dashboard) -> Iterator[Feeder]:
    feed = Feeder(dashboard)
    yield feed
    feed.close()
