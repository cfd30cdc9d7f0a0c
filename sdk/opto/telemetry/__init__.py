"""OpenTelemetry plumbing: names, the tracer/meter facade, and provider configuration."""

from ._configure import configure, shutdown

__all__ = ["configure", "shutdown"]
