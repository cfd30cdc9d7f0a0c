"""The pytest plugin, on once opto is installed (entry point `pytest11`): the `opto_spans` fixture,
and the test's trace tree in the report of a test that used it and failed."""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from .testing import RecordedSpans, record_spans

__all__ = ["opto_spans", "pytest_runtest_makereport"]

_KEY = pytest.StashKey[RecordedSpans]()


@pytest.fixture
def opto_spans(request: pytest.FixtureRequest) -> Iterator[RecordedSpans]:
    """Every span that ends during the test, with lookups; retries do not sleep."""
    with record_spans() as recording:
        request.node.stash[_KEY] = recording
        yield recording


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    recording = item.stash.get(_KEY, None)
    if report.failed and recording is not None:
        report.sections.append(("opto trace tree", recording.tree() or "(no spans ended)"))
    return report
