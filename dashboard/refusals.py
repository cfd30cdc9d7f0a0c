"""`Refusals`: requests and connections turned away before reaching a route, counted by reason.

One instance lives on `app.state.refused`; the OTLP door and the connection guard count into it too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["Refusals"]


@dataclass(slots=True)
class Refusals:
    """Counts since start: each field is one reason a client was turned away."""

    host: int = 0  # Host header not a name of this dashboard (421 or websocket close 1008)
    origin: int = 0  # websocket from a foreign Origin (close 1008)
    token: int = 0  # token missing or wrong (403 or close 1008)
    otlp_busy: int = 0  # OTLP request answered 503 with Retry-After: decode slot and queue taken, or ingest queue full
    connections: int = 0  # connections closed before their request headers were complete

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
