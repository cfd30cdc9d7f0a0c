"""One retry policy type, shared by the decorator, AsyncTraceContext and AsyncBatchProcessor."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from ..errors import RetryableError

__all__ = ["RetryPolicy", "PolicyName", "resolve_policy", "set_testing", "testing"]

PolicyName = Literal["none", "fixed", "exponential_backoff"]

_testing = False


class set_testing:
    """Skip the sleeps between retries (delays are still computed and recorded), for users' tests.

    `set_testing(True)` switches it on for the process; `with set_testing(True):` only for the
    block, restoring what was in force before on the way out.
    """

    __slots__ = ("_before",)

    def __init__(self, enabled: bool = True) -> None:
        global _testing
        self._before = _testing
        _testing = bool(enabled)

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        global _testing
        _testing = self._before


def testing() -> bool:
    return _testing


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failed attempt is retried.

    `attempts` counts retries after the first try (3 means up to 4 tries). The delay before
    retry n is `delay * multiplier**(n-1)`, spread by +/- `jitter` (a fraction) and capped at
    `max_delay`; a `RetryableError(retry_after=...)` replaces it. `retry_on` lists the exception
    types worth retrying; the call's own timeouts are retried when `retry_timeouts` is true.
    """

    attempts: int = 3
    delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 60.0
    jitter: float = 0.1
    retry_on: tuple[type[BaseException], ...] = field(default=(RetryableError,))
    retry_timeouts: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or isinstance(self.attempts, bool) or self.attempts < 0:
            raise ValueError(f"retry attempts must be an int >= 0, got {self.attempts!r}")
        for label, value in (("delay", self.delay), ("max_delay", self.max_delay)):
            if value < 0:
                raise ValueError(f"retry {label} must be >= 0 seconds, got {value!r}")
        if self.multiplier < 1:
            raise ValueError(f"retry multiplier must be >= 1, got {self.multiplier!r}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"retry jitter must be a fraction in [0, 1], got {self.jitter!r}")
        if not isinstance(self.retry_on, tuple) or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in self.retry_on
        ):
            raise TypeError(f"retry_on must be a tuple of exception types, got {self.retry_on!r}")

    @classmethod
    def named(cls, name: PolicyName) -> RetryPolicy:
        """The built-in policies: "none", "fixed" (3 retries, 1 s apart), "exponential_backoff"."""
        if name == "none":
            return cls(attempts=0)
        if name == "fixed":
            return cls(multiplier=1.0)
        if name == "exponential_backoff":
            return cls()
        raise ValueError(
            f"unknown retry policy {name!r}; expected 'none', 'fixed', 'exponential_backoff' "
            "or a RetryPolicy"
        )

    def should_retry(self, exc: BaseException, own_timeout: bool) -> bool:
        """Whether `exc`, raised by an attempt, is worth another try."""
        if own_timeout:
            return self.retry_timeouts
        return issubclass(type(exc), self.retry_on)  # type(), not isinstance: an exception's __class__ may raise

    def delay_for(self, retry: int, exc: BaseException | None = None) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        if isinstance(exc, RetryableError) and exc.retry_after is not None:
            return exc.retry_after
        base = self.delay * self.multiplier ** (retry - 1)
        if self.jitter:
            base *= 1 + random.uniform(-self.jitter, self.jitter)
        return min(base, self.max_delay)


def resolve_policy(policy: RetryPolicy | PolicyName | None) -> RetryPolicy | None:
    """Accept a RetryPolicy, one of the policy names, or None."""
    if policy is None or isinstance(policy, RetryPolicy):
        return policy
    if isinstance(policy, str):
        return RetryPolicy.named(policy)
    raise TypeError(f"retry_policy must be a RetryPolicy or a policy name, got {policy!r}")
