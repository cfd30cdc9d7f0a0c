"""OTLP/HTTP (protobuf) export of traces and metrics to any OpenTelemetry collector.

Configuration resolves argument, then the standard `OTEL_EXPORTER_OTLP_*` environment variables;
the exporter package is an optional extra, imported only when OTLP export is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor

from ._accounted import AccountedBatchProcessor
from ._durations import CallDurations, DurationsExporter

__all__ = ["exporters"]

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
METRICS_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
PROTOCOL_ENV = "OTEL_EXPORTER_OTLP_PROTOCOL"
PROTOCOL = "http/protobuf"


def exporters(
    endpoint: str | None, headers: Mapping[str, str] | None, durations: CallDurations, resource: Resource
) -> tuple[list[SpanProcessor], list[MetricReader]]:
    """Batch span processors (counting what the collector confirms) and metric readers exporting
    over OTLP/HTTP; none if OTLP is not asked for.

    `endpoint` is the collector's base URL (as `OTEL_EXPORTER_OTLP_ENDPOINT`): `/v1/traces` and
    `/v1/metrics` are appended. Without it, the environment variables decide. Metric exports
    also carry `durations` (for `resource` when nothing else is exported).
    """
    _check(endpoint, headers)
    want_traces = bool(endpoint or os.environ.get(ENDPOINT_ENV) or os.environ.get(TRACES_ENDPOINT_ENV))
    want_metrics = bool(endpoint or os.environ.get(ENDPOINT_ENV) or os.environ.get(METRICS_ENDPOINT_ENV))
    if not (want_traces or want_metrics):
        if headers is not None:
            raise ValueError(f"otlp_headers needs an otlp_endpoint (or {ENDPOINT_ENV}) to send them to")
        return [], []
    protocol = os.environ.get(PROTOCOL_ENV, PROTOCOL).strip()
    if protocol != PROTOCOL:
        raise ValueError(
            f"{PROTOCOL_ENV}={protocol!r} is not supported: opto exports OTLP over {PROTOCOL} "
            f"(port 4318 on a collector); unset it or set it to {PROTOCOL!r}"
        )
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ImportError(
            "OTLP export needs the package opentelemetry-exporter-otlp-proto-http: "
            "install the `otlp` extra with `pip install 'opentrace[otlp]'`"
        ) from exc
    base = endpoint.removesuffix("/") if endpoint else None
    processors: list[SpanProcessor] = []
    readers: list[MetricReader] = []
    if want_traces:
        span_exporter = OTLPSpanExporter(endpoint=base and f"{base}/v1/traces", headers=headers)
        processors.append(AccountedBatchProcessor(span_exporter, getattr(span_exporter, "_endpoint", "the OTLP endpoint")))  # the URL it resolved
    if want_metrics:
        metric_exporter = OTLPMetricExporter(endpoint=base and f"{base}/v1/metrics", headers=headers)
        readers.append(PeriodicExportingMetricReader(DurationsExporter(metric_exporter, durations, resource)))
    return processors, readers


def _check(endpoint: str | None, headers: Mapping[str, str] | None) -> None:
    if endpoint is not None:
        if not isinstance(endpoint, str):
            raise TypeError(f"otlp_endpoint must be a URL string like 'http://localhost:4318', got {endpoint!r}")
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(
                f"otlp_endpoint must start with http:// or https://, like 'http://localhost:4318'; got {endpoint!r}"
            )
    else:  # the environment decides: refuse now what every export would fail on later
        for name in (ENDPOINT_ENV, TRACES_ENDPOINT_ENV, METRICS_ENDPOINT_ENV):
            value = os.environ.get(name, "").strip()
            if value and not value.startswith(("http://", "https://")):
                raise ValueError(f"{name} must start with http:// or https://, like 'http://localhost:4318'; got {value!r}")
    if headers is not None and not (
        isinstance(headers, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
    ):
        raise TypeError(f"otlp_headers must map header names to string values, like {{'x-api-key': '...'}}; got {headers!r}")
