"""Exceptions users raise or catch."""

from __future__ import annotations

import math

__all__ = ["RetryableError"]


class RetryableError(Exception):
    """Raised from a traced call to ask for a retry.

    `retry_after` (seconds) replaces the backoff delay for that one retry, as an HTTP 429
    `Retry-After` header asks.
    """

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        if retry_after is not None and not 0 <= retry_after < math.inf:  # NaN fails too
            raise ValueError(f"retry_after must be a finite number of seconds >= 0, got {retry_after!r}")
        super().__init__(message)
        self.retry_after = retry_after
