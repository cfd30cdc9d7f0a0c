"""OpenTrace: async tracing for Python, on OpenTelemetry, with a live local dashboard."""

from . import trace
from ._version import __version__
from .errors import RetryableError
from .telemetry import configure, shutdown

__all__ = ["trace", "RetryableError", "configure", "shutdown", "__version__"]
