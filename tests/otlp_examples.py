"""The OTLP/JSON examples of the specification (opentelemetry-proto, `examples/`), for the OTLP tests."""

from __future__ import annotations

__all__ = ["SPEC_TRACE_EXAMPLE", "SPEC_METRICS_EXAMPLE"]

# examples/trace.json
SPEC_TRACE_EXAMPLE = """
{"resourceSpans": [{
  "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
  "scopeSpans": [{
    "scope": {"name": "my.library", "version": "1.0.0",
              "attributes": [{"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}]},
    "spans": [{
      "traceId": "5B8EFFF798038103D269B633813FC60C",
      "spanId": "EEE19B7EC3C1B174",
      "parentSpanId": "EEE19B7EC3C1B173",
      "name": "I'm a server span",
      "startTimeUnixNano": 1544712660000000000,
      "endTimeUnixNano": 1544712661000000000,
      "kind": 2,
      "attributes": [{"key": "my.span.attr", "value": {"stringValue": "some value"}}]
    }]
  }]
}]}
"""

# examples/metrics.json, without the scope attributes and descriptions (ignored by the dashboard).
SPEC_METRICS_EXAMPLE = {"resourceMetrics": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
    "scopeMetrics": [{
        "scope": {"name": "my.library", "version": "1.0.0"},
        "metrics": [
            {"name": "my.counter", "unit": "1", "sum": {"aggregationTemporality": 1, "isMonotonic": True, "dataPoints": [
                {"asDouble": 5, "startTimeUnixNano": 1544712660300000000, "timeUnixNano": 1544712660300000000,
                 "attributes": [{"key": "my.counter.attr", "value": {"stringValue": "some value"}}]}]}},
            {"name": "my.gauge", "unit": "1", "gauge": {"dataPoints": [
                {"asInt": "10", "timeUnixNano": 1544712660300000000,
                 "attributes": [{"key": "my.gauge.attr", "value": {"stringValue": "some value"}}]}]}},
            {"name": "my.histogram", "unit": "1", "histogram": {"aggregationTemporality": 1, "dataPoints": [
                {"startTimeUnixNano": 1544712660300000000, "timeUnixNano": 1544712660300000000, "count": 3, "sum": 3,
                 "bucketCounts": [1, 1, 1], "explicitBounds": [1], "min": 1, "max": 1}]}},
        ],
    }],
}]}
