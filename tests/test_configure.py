"""`opto.configure()` and life without it. Each case runs in a fresh interpreter: global providers
can be set only once per process, and these tests are about which one gets set."""

from __future__ import annotations

from conftest import run_python


def test_configure_installs_an_sdk_provider_when_the_app_has_none() -> None:
    out = run_python(
        """
        import asyncio, opto
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        opto.configure(service_name="checkout")
        provider = trace.get_tracer_provider()
        assert isinstance(provider, TracerProvider), provider
        assert provider.resource.attributes["service.name"] == "checkout"
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))

        @opto.trace.async_trace
        async def agent(q):
            return q

        asyncio.run(agent("x"))
        print([s.name for s in exporter.get_finished_spans()])
        """
    )
    assert out.strip() == "['agent']"


def test_the_apps_own_provider_is_kept_and_gets_our_exporters() -> None:
    out = run_python(
        """
        import asyncio, opto
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        mine = TracerProvider()
        mine.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(mine)
        opto.configure(service_name="ignored", console=True)
        assert trace.get_tracer_provider() is mine

        @opto.trace.async_trace
        async def agent(q):
            return q

        asyncio.run(agent("x"))
        opto.shutdown()
        print("app spans:", [s.name for s in exporter.get_finished_spans()])
        """
    )
    assert "app spans: ['agent']" in out
    assert '"name": "agent"' in out  # the console exporter we added printed it too


def test_a_provider_set_after_import_receives_spans() -> None:
    out = run_python(
        """
        import asyncio, opto

        @opto.trace.async_trace
        async def agent(q):
            return q

        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        asyncio.run(agent("before"))
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        asyncio.run(agent("after"))
        print([s.attributes["opto.arg.q"] for s in exporter.get_finished_spans()])
        """
    )
    assert out.strip() == "[\"'after'\"]"


def test_without_any_provider_calls_behave_and_skip_telemetry() -> None:
    """No SDK set up: results, retries and timeouts still work; nothing is recorded."""
    out = run_python(
        """
        import asyncio, opto
        from opto.telemetry._facade import inactive

        opto.trace.set_testing(True)
        tries = []

        @opto.trace.async_trace(retry_attempts=2)
        async def flaky():
            tries.append(1)
            if len(tries) < 3:
                raise opto.RetryableError("again")
            return "ok"

        @opto.trace.async_trace(timeout=0.01)
        async def slow():
            await asyncio.sleep(10)

        async def main():
            assert await flaky() == "ok" and len(tries) == 3
            try:
                await slow()
            except TimeoutError:
                print("timed out")

        asyncio.run(main())
        print("inactive:", inactive())
        """
    )
    assert out.split() == ["timed", "out", "inactive:", "True"]


def test_shutdown_is_idempotent() -> None:
    run_python(
        """
        import opto
        opto.configure(service_name="x", console=True)
        opto.shutdown()
        opto.shutdown()
        """
    )
