"""The traced call's fast path writes span attributes directly; these are the cases where it must not,
or must notice what changed. Cases with their own global providers run in a fresh interpreter."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from opentelemetry import trace

import opto
from conftest import run_python
from opto.telemetry import _current, semconv

if TYPE_CHECKING:
    from conftest import Spans

_SETUP = """
import asyncio, json, opto
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()

def install(**provider_options):
    provider = TracerProvider(**provider_options)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

@opto.trace.async_trace
async def agent(query, k=3):
    return {"query": query, "k": k}

def attributes():
    return [dict(s.attributes) for s in exporter.get_finished_spans()]
"""


def test_a_tracer_provider_without_a_meter_provider_gets_every_attribute() -> None:
    out = run_python(
        _SETUP
        + """
install()
asyncio.run(agent("what is tracing?", k=5))
print(json.dumps(attributes()))
"""
    )
    (attrs,) = json.loads(out)
    assert attrs[semconv.ARG_PREFIX + "query"] == "'what is tracing?'"
    assert attrs[semconv.ARG_PREFIX + "k"] == "5"
    assert attrs[semconv.RESULT] == "{'query': 'what is tracing?', 'k': 5}"
    assert attrs[semconv.OUTCOME] == "ok" and attrs[semconv.ATTEMPTS] == 1
    assert attrs[semconv.CONCURRENCY] == 1 and attrs[semconv.TASK_NAME]
    assert attrs[semconv.CODE_FUNCTION_NAME] == "agent"


def test_a_meter_provider_set_later_gets_the_durations() -> None:
    out = run_python(
        _SETUP
        + """
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

install()
asyncio.run(agent("before"))
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
asyncio.run(agent("after"))
counts = [p.count for r in reader.get_metrics_data().resource_metrics for s in r.scope_metrics
          for m in s.metrics if m.name == "opto.call.duration" for p in m.data.data_points]
print(json.dumps(counts))
"""
    )
    assert json.loads(out) == [1]


def test_span_limits_are_kept() -> None:
    """With an attribute count or length limit, attributes go through the SDK, which enforces it."""
    out = run_python(
        _SETUP
        + """
from opentelemetry.sdk.trace import SpanLimits
install(span_limits=SpanLimits(max_span_attributes=4, max_span_attribute_length=6))
asyncio.run(agent("what is tracing?"))
print(json.dumps(attributes()))
"""
    )
    (attrs,) = json.loads(out)
    assert len(attrs) == 4
    assert attrs[semconv.RESULT] == "{'quer"  # the newest are kept, cut to 6 characters
    assert attrs[semconv.OUTCOME] == "ok"


def test_a_sampled_out_call_still_nests_its_context() -> None:
    out = run_python(
        _SETUP
        + """
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
install(sampler=ALWAYS_OFF)

@opto.trace.async_trace
async def inner():
    return trace.get_current_span().get_span_context().span_id

async def main():
    outer = trace.get_current_span()
    seen = await inner()
    return seen != 0 and trace.get_current_span() is outer

print(json.dumps([asyncio.run(main()), attributes()]))
"""
    )
    assert json.loads(out) == [True, []]


async def test_attributes_the_body_sets_are_kept_with_ours(spans: Spans) -> None:
    @opto.trace.async_trace
    async def tagged(x: int) -> int:
        trace.get_current_span().set_attribute("app.tag", "mine")
        return x

    assert await tagged(2) == 2
    attrs = spans.one("test_attributes_the_body_sets_are_kept_with_ours.<locals>.tagged").attributes
    assert attrs["app.tag"] == "mine"
    assert attrs[semconv.OUTCOME] == "ok" and attrs[semconv.RESULT] == "2"


def test_attach_span_makes_the_span_current_until_detached() -> None:
    span = trace.get_tracer("probe").start_span("probe")
    before = trace.get_current_span()
    token = _current.attach_span(span)
    try:
        assert trace.get_current_span() is span
    finally:
        _current.detach(token)
        span.end()
    assert trace.get_current_span() is before
