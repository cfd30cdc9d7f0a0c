"""OpenTrace: async tracing for Python, on OpenTelemetry, with a live local dashboard."""

from typing import TYPE_CHECKING

from ._core import add_event, instrument_asyncio, set_attributes, span, uninstrument_asyncio
from ._version import __version__
from .errors import RetryableError
from .telemetry import configure, shutdown
from .telemetry.scrub import Scrub, ScrubMatch

if TYPE_CHECKING:  # type checkers see the callable module `opto.trace` through its class
    from .trace import TraceModule

    trace: TraceModule
else:
    from . import trace

__all__ = ["trace", "RetryableError", "configure", "shutdown", "Scrub", "ScrubMatch", "span", "set_attributes", "add_event", "instrument_asyncio",
           "uninstrument_asyncio", "__version__"]
