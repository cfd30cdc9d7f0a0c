"""The pytest plugin shipped with opto: `opto_spans` records every span of a test, with or without
the app's own provider, retries do not sleep, and a failing test's report shows its trace tree."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from opentelemetry import trace

import opto
from opto._core import retry
from opto.testing import RecordedSpans


def _pytest(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run pytest on `code` as a user's test file: no conftest, the plugin found by its entry point."""
    (tmp_path / "test_app.py").write_text(textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_app.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )


APP = """
    import asyncio

    import pytest
    from opentelemetry import trace

    import opto

    attempts = 0

    @opto.trace(retry_attempts=2, retry_delay=3600, retry_on=(ConnectionError,))
    async def charge(card: str, amount: int) -> str:
        global attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError("flaky")
        with trace.get_tracer("httpx").start_as_current_span("POST /charge"):
            return "paid"

    @opto.trace
    async def checkout(card: str) -> str:
        return await charge(card, 10)
"""

TESTS = """
    @pytest.mark.asyncio
    async def test_checkout(opto_spans):
        assert await checkout("4242") == "paid"
        assert opto_spans.outcome(charge) == "ok"
        assert [r["opto.attempt"] for r in opto_spans.retries(charge)] == [1, 2]
        assert opto_spans.attributes(charge)["opto.arg.card"] == "'4242'"
        (http,) = opto_spans.children(opto_spans.one(charge))
        assert http.name == "POST /charge"
        assert opto_spans.tree().splitlines()[0].startswith("checkout [ok]")

    @pytest.mark.asyncio
    async def test_a_failing_test_shows_its_tree(opto_spans):
        await checkout("4242")
        assert opto_spans.outcome(charge) == "error"
"""


def test_a_users_tests_see_their_spans_with_no_provider_set(tmp_path: Path) -> None:
    proc = _pytest(tmp_path, APP + TESTS)
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout + proc.stderr
    report = proc.stdout.split("opto trace tree", 1)[1]
    assert "checkout [ok]" in report and "  charge [ok]" in report and "    POST /charge" in report


def test_a_users_tests_see_their_spans_with_the_apps_own_provider(tmp_path: Path) -> None:
    """The app's provider, set at import, is kept: its own processor and the fixture both see the spans."""
    own = """
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    APP_EXPORTER = InMemorySpanExporter()
    PROVIDER = TracerProvider()
    PROVIDER.add_span_processor(SimpleSpanProcessor(APP_EXPORTER))
    trace.set_tracer_provider(PROVIDER)
    """
    tests = """
    @pytest.mark.asyncio
    async def test_both_see_it(opto_spans):
        assert trace.get_tracer_provider() is PROVIDER
        await checkout("4242")
        assert [s.name for s in opto_spans.all()] == [s.name for s in APP_EXPORTER.get_finished_spans()]
        assert opto_spans.outcome(checkout) == "ok"
    """
    proc = _pytest(tmp_path, APP + own + tests)
    assert "1 passed" in proc.stdout, proc.stdout + proc.stderr


async def test_the_fixture_works_beside_this_projects_own_provider(opto_spans: RecordedSpans, spans) -> None:
    """This suite's conftest installs a provider first; the fixture records from it, retries skip sleeps."""
    calls = 0

    @opto.trace(retry_attempts=1, retry_delay=3600, retry_on=(ConnectionError,))
    async def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("once")
        return calls

    assert retry.testing()
    assert await flaky() == 2
    assert opto_spans.one(flaky) is not None and [s.name for s in opto_spans.all()] == [s.name for s in spans.all()]
    assert len(opto_spans.retries(flaky)) == 1


def test_one_says_what_did_end(opto_spans: RecordedSpans) -> None:
    with opto.span("a"):
        pass
    try:
        opto_spans.one("b")
    except AssertionError as exc:
        assert "expected one span 'b', got 0" in str(exc) and "'a'" in str(exc)
    else:
        raise AssertionError("one() found a span that did not end")
    assert trace.get_current_span().is_recording() is False


def test_set_testing_is_scoped_as_a_context_manager() -> None:
    assert not retry.testing()
    with opto.trace.set_testing(True):
        assert retry.testing()
        with opto.trace.set_testing(False):
            assert not retry.testing()
        assert retry.testing()
    assert not retry.testing()
