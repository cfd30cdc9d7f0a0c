"""Shared fixtures: one real OpenTelemetry SDK for the whole session, inspected in memory."""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import opto

# Global providers can be set once per process, so the session shares these; tests that need a
# process without any provider (opto.configure, the no-SDK path) run in a subprocess.
EXPORTER = InMemorySpanExporter()
METRIC_READER = InMemoryMetricReader()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(_provider)
metrics.set_meter_provider(MeterProvider(metric_readers=[METRIC_READER]))


def run_python(code: str) -> str:
    """Run `code` in a fresh interpreter (for cases that set their own global providers); its stdout."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


class Spans:
    """The finished spans of the running test, looked up by name."""

    def all(self) -> list[ReadableSpan]:
        return list(EXPORTER.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in EXPORTER.get_finished_spans() if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, f"expected one span {name!r}, got {len(found)}: {[s.name for s in self.all()]}"
        return found[0]

    def of(self, function: str) -> list[ReadableSpan]:
        """The spans of a function by its short name (a local function's span carries its qualname)."""
        return [s for s in EXPORTER.get_finished_spans() if s.name.rsplit(".", 1)[-1] == function]


@pytest.fixture
def spans() -> Iterator[Spans]:
    EXPORTER.clear()
    yield Spans()
    EXPORTER.clear()


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    METRIC_READER.get_metrics_data()  # drain what earlier tests recorded (delta-free: cumulative)
    return METRIC_READER


MetricPoints = Callable[[str, dict[str, Any]], list[Any]]


@pytest.fixture
def metric_points(metric_reader: InMemoryMetricReader) -> MetricPoints:
    """`metric_points(metric, attributes)`: the points of `metric` whose attributes include those, collected now."""

    def points(metric: str, attributes: dict[str, Any]) -> list[Any]:
        data = metric_reader.get_metrics_data()
        return [
            point
            for resource in (data.resource_metrics if data else ())
            for scope in resource.scope_metrics
            for m in scope.metrics
            if m.name == metric
            for point in m.data.data_points
            if attributes.items() <= dict(point.attributes or {}).items()
        ]

    return points


@pytest.fixture(autouse=True)
def _reset_global_config() -> Iterator[None]:
    """Every test starts with debug off and real retry sleeps."""
    yield
    opto.trace.set_async_debug(False)
    opto.trace.set_testing(False)
    assert opto.trace is not None
    opto.uninstrument_asyncio()
    opto._core.instrument.set_introspection(False)
    assert not [t for t in threading.enumerate() if t.name == "opto-loop-watchdog"], "a loop watchdog outlived its test"


SPEC_PAGE = Path(__file__).parent / "spec" / "asynchronous-execution.md"


class SpecPage:
    """The spec page's Python blocks, for tests that run them as written next to stand-in helpers."""

    def block(self, containing: str) -> str:
        """The one ```python block of the page that contains `containing`."""
        blocks = [b for b in re.findall(r"```python\n(.*?)```", SPEC_PAGE.read_text(), re.S) if containing in b]
        assert len(blocks) == 1, f"expected one spec block containing {containing!r}, found {len(blocks)}"
        return blocks[0]

    async def run(self, code: str, namespace: dict[str, Any]) -> None:
        """Run `code` in `namespace`; top-level `await` and `async for` work as in `python -m asyncio`."""
        compiled = compile(code, str(SPEC_PAGE), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(compiled, namespace)
        if inspect.iscoroutine(result):
            await result


@pytest.fixture
def spec_page() -> SpecPage:
    return SpecPage()


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Any]:
    """A real dashboard server on its own SQLite file (`dashboard_server.Dashboard`)."""
    from dashboard_server import Dashboard

    with Dashboard(tmp_path / "opto.db") as d:
        yield d


@pytest.fixture
async def client(dashboard: Any) -> AsyncIterator[Any]:
    """An HTTP client of the `dashboard` fixture's server."""
    import httpx

    async with httpx.AsyncClient(base_url=dashboard.url, timeout=30) as c:
        yield c
