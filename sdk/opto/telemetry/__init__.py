"""OpenTelemetry plumbing: names, the tracer/meter facade, and provider configuration.

Besides `configure` and `shutdown` for applications, this is the surface the SDK's own upper
layers (`opto._core`, `opto.trace`) use: they import these names, never telemetry's private modules.
"""

from . import scrub, semconv, sources
from ._attributes import add_attributes, writable
from ._configure import configure, shutdown
from ._current import attach, attach_span, current, detach, undo, with_span
from ._facade import METER, SECONDS_BUCKETS, TRACER, DurationRecorder, queue_wait, recording, retries, tracer

__all__ = [
    "configure", "shutdown", "scrub", "semconv", "sources", "add_attributes", "writable", "attach", "attach_span", "undo",
    "current", "with_span", "detach", "METER", "SECONDS_BUCKETS", "TRACER", "DurationRecorder", "queue_wait", "recording",
    "retries", "tracer",
]
