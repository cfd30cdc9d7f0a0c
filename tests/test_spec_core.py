"""The spec page's decorator snippets run as written, next to stand-ins for the user's helpers."""

from __future__ import annotations

import asyncio
import sys
import threading
import types
from typing import Any

import pytest

import opto
from opto.telemetry import semconv


def page(**helpers: Any) -> dict[str, Any]:
    """A namespace with what the page imported in earlier blocks (asyncio, opto) and the helpers."""
    return {"asyncio": asyncio, "opto": opto, **helpers}


class StandInLLM:
    """The user's LLM client: answers after a short await, or fails the first `failures` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls = 0

    async def acomplete(self, query: str) -> str:
        self.calls += 1
        await asyncio.sleep(0)
        if self.calls <= self.failures:
            raise ConnectionError("upstream 503")
        return f"answer to {query}"

    def complete(self, query: str) -> str:
        return f"answer to {query}"


def test_async_trace_snippet(spec_page, spans, capsys) -> None:
    namespace: dict[str, Any] = {"llm": StandInLLM()}
    exec(spec_page.block("What is machine learning?"), namespace)
    assert capsys.readouterr().out == "answer to What is machine learning?\n"
    assert spans.one("async_agent").attributes[semconv.OUTCOME] == "ok"


def test_migration_guide_snippet(spec_page, spans) -> None:
    namespace = page(llm=StandInLLM())
    exec(spec_page.block("# Before (synchronous)"), namespace)
    assert namespace["sync_agent"]("query") == "answer to query"
    assert asyncio.run(namespace["async_agent"]("query")) == "answer to query"
    assert {s.name for s in spans.all()} == {"sync_agent", "async_agent"}


def test_error_handling_and_retries_snippet(spec_page, spans) -> None:
    """Failures become RetryableError and are retried with backoff, then succeed."""
    opto.trace.set_testing(True)
    llm = StandInLLM(failures=2)
    namespace = page(llm=llm)
    exec(spec_page.block("robust_async_agent"), namespace)
    assert asyncio.run(namespace["robust_async_agent"]("q")) == "answer to q"
    span = spans.one("robust_async_agent")
    assert span.attributes[semconv.ATTEMPTS] == 3 and span.attributes[semconv.TIMEOUT_S] == 10.0
    delays = [e.attributes[semconv.RETRY_DELAY_S] for e in span.events if e.name == semconv.EVENT_RETRY]
    assert 0.9 <= delays[0] <= 1.1 and 1.8 <= delays[1] <= 2.2


def test_custom_event_loop_snippet(spec_page, spans) -> None:
    namespace = page()

    async def process_with_custom_loop(query: str) -> tuple[str, bool]:
        running = asyncio.get_running_loop()
        return query, running is namespace["loop"] and running.get_debug()

    namespace["process_with_custom_loop"] = process_with_custom_loop
    exec(spec_page.block("Custom event loop with specific settings"), namespace)
    loop = namespace["loop"]
    try:
        assert asyncio.run(namespace["custom_agent"]("q")) == ("q", True)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        for t in threading.enumerate():
            if t.name == f"opto-loop-{id(loop):x}":
                t.join(5)
        loop.close()
    assert spans.one("custom_agent").attributes[semconv.OUTCOME] == "ok"


def test_debugging_snippet(spec_page, spans, caplog) -> None:
    caplog.set_level("DEBUG", logger="opto")
    namespace = page()
    exec(spec_page.block("opto.trace.set_async_debug(True)"), namespace)
    assert asyncio.run(namespace["debug_agent"]("q")) == "Processed: q"
    assert any("debug_agent" in r.getMessage() for r in caplog.records if r.name == "opto")
    assert semconv.DEBUG_CREATION_STACK in spans.one("debug_agent").attributes


@pytest.fixture
def aiohttp_stand_in() -> Any:
    """The snippet imports aiohttp; the session is only handed to the user's own scrape_url."""
    module = types.ModuleType("aiohttp")

    class ClientSession:
        async def __aenter__(self) -> ClientSession:
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

    module.ClientSession = ClientSession  # type: ignore[attr-defined]
    saved = sys.modules.get("aiohttp")
    sys.modules["aiohttp"] = module
    yield module
    if saved is None:
        del sys.modules["aiohttp"]
    else:
        sys.modules["aiohttp"] = saved


async def test_web_scraping_snippet(spec_page, spans, aiohttp_stand_in) -> None:
    async def scrape_url(session: Any, url: str) -> str:
        await asyncio.sleep(0)
        return f"<html>{url}</html>"

    async def analyze_content(content: str) -> int:
        return len(content)

    namespace = page(scrape_url=scrape_url, analyze_content=analyze_content, combine_analyses=sum)
    await spec_page.run(spec_page.block("scrape_and_analyze"), namespace)
    urls = ["https://a.example", "https://b.example"]
    assert await namespace["scrape_and_analyze"](urls) == sum(len(f"<html>{u}</html>") for u in urls)
    assert spans.one("scrape_and_analyze").attributes[semconv.OUTCOME] == "ok"


async def test_multi_model_ensemble_snippet(spec_page, spans) -> None:
    """One model failing does not fail the ensemble; the traced call records the combined result."""

    class Model:
        def __init__(self, answer: str | None) -> None:
            self.answer = answer

        async def apredict(self, query: str) -> str:
            await asyncio.sleep(0)
            if self.answer is None:
                raise RuntimeError("model offline")
            return self.answer

    namespace = page(
        model_gpt4=Model("yes"),
        model_claude=Model(None),
        model_local=Model("yes"),
        ensemble_combine=lambda preds: max(set(preds), key=preds.count),
    )
    await spec_page.run(spec_page.block("ensemble_prediction"), namespace)
    assert await namespace["ensemble_prediction"]("q") == "yes"
    assert spans.one("ensemble_prediction").attributes[semconv.RESULT] == "'yes'"
