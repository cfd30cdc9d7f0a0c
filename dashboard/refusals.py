"""`Refusals`: requests and connections turned away before reaching a route, counted by reason.

One instance lives on `app.state.refused`; the OTLP door and the connection guard count into it too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields

__all__ = ["Refusals"]


@dataclass(slots=True)
class Refusals:
    """Counts since start: each field is one reason a client was turned away."""

    host: int = 0  # Host header not a name of this dashboard (421 or websocket close 1008)
    origin: int = 0  # websocket from a foreign Origin (close 1008)
    token: int = 0  # token missing or wrong (403 or close 1008)
    otlp_busy: int = 0  # OTLP request answered 503 with Retry-After: decode slot and queue taken, or ingest queue full
    connections: int = 0  # connections closed before their request headers were complete
    parameters: Counter[str] = field(default_factory=Counter)  # API requests answered 400, by route

    def as_dict(self) -> dict[str, int | dict[str, int]]:
        # Not `dataclasses.asdict`: it would rebuild the Counter from (key, count) pairs, counting the pairs.
        return {f.name: dict(v) if isinstance(v := getattr(self, f.name), Counter) else v for f in fields(self)}
