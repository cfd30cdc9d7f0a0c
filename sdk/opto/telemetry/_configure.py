"""`opto.configure()`: wire OpenTelemetry SDK providers and exporters, never replacing the app's own."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from . import _facade, instrumentation, live, otlp, scrub as _scrub, semconv
from ._accounted import AccountedBatchProcessor
from ._durations import CallDurations

__all__ = ["configure", "shutdown"]

logger = logging.getLogger("opto")
DEFAULT_SHUTDOWN_TIMEOUT_S = 5.0
_REPORT_S = 0.5  # past its budget, for a processor to log what it could not export


@dataclass
class _Installed:
    """What configure() added, so shutdown() flushes exactly that."""

    processors: list[SpanProcessor] = field(default_factory=list)
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    atexit_registered: bool = False


_installed = _Installed()
_lock = threading.Lock()


def _service_name(service_name: str | None) -> str:
    if service_name is not None and not isinstance(service_name, str):
        raise TypeError(f"service_name must be a str, got {type(service_name).__name__}")
    if service_name:
        return service_name
    # OTEL_SERVICE_NAME, else service.name in OTEL_RESOURCE_ATTRIBUTES.
    env = OTELResourceDetector().detect().attributes.get(semconv.SERVICE_NAME)
    if env:
        return str(env)
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return script.removesuffix(".py") or "opto-app"


def _app_tracer_provider() -> Any:
    """The application's tracer provider, or None when only the API's proxy is installed."""
    provider = trace.get_tracer_provider()
    return None if isinstance(provider, trace.ProxyTracerProvider) else provider


def _app_meter_provider() -> Any:
    provider = metrics.get_meter_provider()
    return None if type(provider).__name__ == "_ProxyMeterProvider" else provider


def configure(
    *,
    service_name: str | None = None,
    console: bool = False,
    resource_attributes: Mapping[str, str | int | float | bool] | None = None,
    otlp_endpoint: str | None = None,
    otlp_headers: Mapping[str, str] | None = None,
    dashboard: str | None = None,
    scrub: _scrub.Scrub | None = None,
    call_durations: bool = True,
    asyncio: bool | None = None,
    introspection: bool | None = None,
) -> None:
    """Send OpenTrace telemetry somewhere.

    If the application has not set a TracerProvider, an SDK one is installed with a resource
    naming `service_name` (else `OTEL_SERVICE_NAME`, else the script's name); if it has, that
    provider is kept and the exporters asked for here are added to it. `console=True` prints
    finished spans. `otlp_endpoint` (else `OTEL_EXPORTER_OTLP_ENDPOINT`) exports traces and
    metrics over OTLP/HTTP, sending `otlp_headers`. `dashboard` (else `OPTO_DASHBOARD_URL`), such as
    "http://127.0.0.1:8765", streams span starts and ends to opto-dashboard. `scrub`
    (`opto.Scrub(extra_patterns=..., callback=...)`) adds secret-name patterns to the defaults and
    a callback that may let a matched value through; None keeps the defaults. `asyncio=True`
    instruments asyncio (`opto.instrument_asyncio()`: every task, loop lag, blocked-loop
    reports), False switches it off; `introspection=True` lets the dashboard ask this process
    where its tasks are awaiting even with asyncio off (None leaves either as it is).
    `call_durations=False` stops recording the `opto.call.duration` histogram (spans keep every
    call's duration): with the app's own SDK MeterProvider, whose `Histogram.record` costs about
    as much as the rest of a traced call, that is the fastest setting. Calling it is optional:
    without it, spans go to whatever the app set up.
    """
    for flag, given in (("call_durations", call_durations), ("console", console)):
        if not isinstance(given, bool):
            raise TypeError(f"{flag} must be True or False, got {type(given).__name__}")
    for switch, value in (("asyncio", asyncio), ("introspection", introspection)):
        if value is not None and not isinstance(value, bool):
            raise TypeError(f"{switch} must be True, False or None, got {value!r}")
    if scrub is not None and not isinstance(scrub, _scrub.Scrub):
        raise TypeError(f"scrub must be an opto.Scrub(extra_patterns=..., callback=...), got {type(scrub).__name__}")
    name = _service_name(service_name)
    attrs: dict[str, Any] = {semconv.SERVICE_NAME: name}
    attrs.update(resource_attributes or {})
    resource = Resource.create(attrs)
    processors: list[SpanProcessor] = []
    readers: list[MetricReader] = []
    durations = CallDurations()
    try:
        if console:
            processors.append(BatchSpanProcessor(ConsoleSpanExporter()))
        otlp_processors, readers = otlp.exporters(otlp_endpoint, otlp_headers, durations, resource)
        processors += otlp_processors
        processors += live.processors(dashboard, name)
    except BaseException:  # a bad setting found late: nothing of this call stays running or applied
        for processor in processors:
            processor.shutdown()
        for reader in readers:
            reader.shutdown()
        raise
    _facade.set_call_durations(call_durations)
    _scrub.set_scrub(scrub)
    resource_given = service_name is not None or bool(resource_attributes)
    _install(resource, processors, readers, durations, resource_given)
    if asyncio is not None or introspection is not None:
        instrumentation.switch(asyncio, introspection)


class _LateProvider(logging.Filter):
    """On OpenTelemetry's "Overriding of current TracerProvider is not allowed", after configure()
    installed the provider, says why the application's provider was ignored and what to do."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _installed.tracer_provider is not None and str(record.msg).startswith("Overriding of current TracerProvider"):
            logger.warning(
                "opto: the application set its own TracerProvider after opto.configure() had installed one; "
                "OpenTelemetry allows one per process, so the application's provider is ignored. "
                "Call opto.configure() after trace.set_tracer_provider(...): it then adds its exporters to your provider"
            )
        return True


_late_provider = _LateProvider()


def _install(
    resource: Resource, processors: list[SpanProcessor], readers: list[MetricReader], durations: CallDurations,
    resource_given: bool,
) -> None:
    with _lock:
        provider = _app_tracer_provider()
        if provider is None:
            provider = TracerProvider(resource=resource, shutdown_on_exit=False)
            trace.set_tracer_provider(provider)
            _installed.tracer_provider = provider
            logging.getLogger(trace.__name__).addFilter(_late_provider)  # once: a filter is added at most once
        elif resource_given:
            logger.warning(
                "opto: service_name and resource_attributes were not applied: the TracerProvider already set "
                "keeps its own resource. Set them on the Resource you give your TracerProvider, like "
                "TracerProvider(resource=Resource.create({'service.name': ...}))"
            )
        if processors:
            if not hasattr(provider, "add_span_processor"):
                raise RuntimeError(
                    f"the application's tracer provider {type(provider).__name__} cannot take span "
                    "processors; configure exporters on it directly instead of through opto.configure()"
                )
            for processor in processors:
                provider.add_span_processor(processor)
                _installed.processors.append(processor)
        if readers:
            if _app_meter_provider() is None:
                meter_provider = MeterProvider(resource=resource, metric_readers=readers, shutdown_on_exit=False)
                _facade.record_in_process(meter_provider, durations)  # its readers export `durations`
                metrics.set_meter_provider(meter_provider)
                _installed.meter_provider = meter_provider
            else:
                logger.warning("the application has its own MeterProvider; opto metric exporters were not added to it")
        if not _installed.atexit_registered:
            atexit.register(shutdown)
            if hasattr(os, "register_at_fork"):
                os.register_at_fork(after_in_child=_flush_at_multiprocessing_exit)
            _installed.atexit_registered = True


def _flush_at_multiprocessing_exit() -> None:
    """A child that multiprocessing forks ends with `os._exit`, which skips atexit, but runs its
    finalizers: `shutdown` becomes one, once multiprocessing has cleared the parent's (a plain
    fork's child that exits normally has atexit)."""
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util.register_after_fork(shutdown, lambda flush: util.Finalize(None, flush, exitpriority=0))


def shutdown(timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S) -> None:
    """Flush and stop what configure() installed, within `timeout_s`. Safe to call twice.

    Each exporter stops on its own daemon thread: one that hangs (a collector that never answers)
    neither holds the program past the limit nor keeps the others from flushing. A processor with
    a longer `flush_timeout_s` of its own (the live dashboard exporter's) is given that long.
    """
    _facade.set_call_durations(True)
    with _lock:
        processors, _installed.processors = _installed.processors, []
        meter_provider, _installed.meter_provider = _installed.meter_provider, None
    stopping: list[tuple[threading.Thread, float, Any]] = [
        (_in_thread(_stop_processor, processor, timeout_s), max(timeout_s, getattr(processor, "flush_timeout_s", 0.0)), processor)
        for processor in processors
    ]
    if meter_provider is not None:
        stopping.append((_in_thread(_stop_meter_provider, meter_provider, timeout_s), timeout_s, meter_provider))
    start = time.monotonic()
    for thread, budget, _ in stopping:
        thread.join(max(0.0, start + budget + _REPORT_S - time.monotonic()))
    late = [(thread.name, what) for thread, _, what in stopping if thread.is_alive()]
    for _, what in late:
        if isinstance(what, AccountedBatchProcessor):  # counts what its collector never confirmed
            what.report()
    if late:
        logger.warning("opto: telemetry not exported within %ss at shutdown was dropped (%s)", timeout_s, ", ".join(name for name, _ in late))


def _in_thread(stop: Any, what: Any, timeout_s: float) -> threading.Thread:
    thread = threading.Thread(target=stop, args=(what, timeout_s), name=f"opto-shutdown-{type(what).__name__}", daemon=True)
    thread.start()
    return thread


def _stop_processor(processor: SpanProcessor, timeout_s: float) -> None:
    try:
        if not hasattr(processor, "flush_timeout_s"):  # the live exporter's shutdown flushes within its own limit
            processor.force_flush(int(timeout_s * 1000))
        processor.shutdown()
    except Exception:
        logger.exception("opto: shutting down span processor %r failed", processor)


def _stop_meter_provider(meter_provider: MeterProvider, timeout_s: float) -> None:
    try:
        meter_provider.shutdown(timeout_millis=timeout_s * 1000)
    except Exception:
        logger.exception("opto: shutting down the meter provider failed")
