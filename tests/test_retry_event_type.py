"""An `opto.retry` event names its cause the way the `exception` event does: the qualified type."""

from __future__ import annotations

import pytest

import opto
from opto.telemetry import semconv


class UpstreamBusy(opto.RetryableError):
    """A failure worth retrying, defined outside builtins so its module shows in the type."""


async def test_retry_and_exception_events_carry_the_same_qualified_type(spans) -> None:
    """Both events of a call that retried once and then gave up read `tests.…UpstreamBusy`-style, module first."""
    opto.trace.set_testing(True)

    @opto.trace.async_trace(retry_attempts=1)
    async def busy() -> None:
        raise UpstreamBusy("try later")

    with pytest.raises(UpstreamBusy):
        await busy()
    events = {e.name: e for e in spans.one(busy.__qualname__).events}
    qualified = f"{UpstreamBusy.__module__}.UpstreamBusy"
    assert events[semconv.EVENT_RETRY].attributes[semconv.EXCEPTION_TYPE] == qualified
    assert events["exception"].attributes[semconv.EXCEPTION_TYPE] == qualified
