"""The live hub's coalescing: one update per tick whatever the ingest rate; a lagging browser gets a snapshot."""

from __future__ import annotations

from opto_dashboard.hub import HEARTBEAT_S, MIN_TICK_S, TICK_S, Hub, _Browser, period
from opto_dashboard.records import SpanRecord
from opto_dashboard.stats import Stats
from opto_dashboard.store import Write

from dashboard_server import span_record


def stored(stats: Stats, n: int) -> None:
    records = [SpanRecord.from_json(span_record(f"{i:032x}", f"{i + 1:016x}")) for i in range(n)]
    stats.stored([Write(records)])


def test_many_writes_between_ticks_make_one_update() -> None:
    stats = Stats()
    hub = Hub(stats)
    browser = _Browser()
    hub.browsers.add(browser)
    for _ in range(50):
        stored(stats, 2)
    hub.tick()
    assert browser.message is not None and browser.message["new_spans"] == 100
    assert not browser.lagged
    hub.tick()  # nothing changed since: nothing new is offered
    assert not browser.lagged


def test_a_browser_that_did_not_take_an_update_is_marked_for_a_snapshot() -> None:
    stats = Stats()
    hub = Hub(stats)
    browser = _Browser()
    hub.browsers.add(browser)
    stored(stats, 1)
    hub.tick()
    stored(stats, 1)
    hub.tick()  # the first update was never sent: it is replaced, not queued behind
    assert browser.lagged
    assert browser.message is not None and browser.message["live"]["ingest"]["spans_stored"] == 2


def test_ticks_sample_concurrency_of_in_flight_spans() -> None:
    stats = Stats()
    hub = Hub(stats)
    stats.stored([Write([SpanRecord.from_json(span_record("a" * 32, "b" * 16, "busy", ended=False))])])
    hub.tick()
    (sample,) = stats.snapshot()["concurrency"]
    assert sample["total"] == 1 and sample["by_name"] == {"busy": 1}


def test_a_commit_after_a_quiet_tick_ticks_at_once_and_one_after_a_busy_tick_waits() -> None:
    stats = Stats()
    hub = Hub(stats)
    browser = _Browser()
    hub.browsers.add(browser)
    hub.tick()  # the first snapshot goes out
    hub.tick()  # nothing new: a quiet tick
    stored(stats, 1)
    hub.nudge([])
    assert hub._woken.is_set()  # the run loop ticks now, not at the end of its period
    hub._woken.clear()
    hub.tick()  # pushed the commit: a busy tick
    stored(stats, 1)
    hub.nudge([])
    assert not hub._woken.is_set()  # at most one push per period: this waits for the next tick


def test_commits_with_no_browser_watching_do_not_wake_the_hub() -> None:
    stats = Stats()
    hub = Hub(stats)
    stored(stats, 1)
    hub.nudge([])
    assert not hub._woken.is_set()


def test_ticks_are_short_while_updates_are_cheap_and_longer_as_they_cost_more() -> None:
    """The hub spends at most about a tenth of a core: the period is ten times an update's cost, within bounds."""
    assert period(0.0001) == MIN_TICK_S
    assert period(0.01) == 0.1
    assert period(2.0) == TICK_S


def test_concurrency_is_sampled_every_tick_s_however_often_the_hub_ticks() -> None:
    """Samples stay a quarter second apart, so the minute of samples the charts show is still a minute."""
    stats = Stats()
    hub = Hub(stats)
    for _ in range(5):
        hub.tick()
    assert len(stats.snapshot()["concurrency"]) == 1


def test_with_nothing_new_a_heartbeat_carries_the_new_samples() -> None:
    """A call that hangs while nothing else arrives: the concurrency chart goes on moving, a heartbeat
    update every HEARTBEAT_S, and a heartbeat is not news (the next commit still ticks at once)."""
    stats = Stats()
    hub = Hub(stats)
    browser = _Browser()
    hub.browsers.add(browser)
    stats.stored([Write([SpanRecord.from_json(span_record("a" * 32, "b" * 16, "hung", ended=False))])])
    hub.tick()
    assert browser.message is not None and not browser.message["heartbeat"]
    browser.message = None
    hub.tick()  # nothing new, within HEARTBEAT_S: nothing offered
    assert browser.message is None
    hub._pushed -= HEARTBEAT_S  # as if a second had gone by
    hub._sampled -= TICK_S
    hub.tick()
    update = browser.message
    assert update is not None and update["heartbeat"] and update["new_spans"] == 0
    samples = update["live"]["concurrency"]
    assert len(samples) == 2 and samples[-1]["by_name"] == {"hung": 1}
    stored(stats, 1)
    hub.nudge([])
    assert hub._woken.is_set()


def test_no_heartbeat_without_a_browser() -> None:
    stats = Stats()
    hub = Hub(stats)
    hub.tick()
    assert hub._pushed == 0.0
