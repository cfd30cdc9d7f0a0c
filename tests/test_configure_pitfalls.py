"""configure() says what to do where it used to be silent: a provider the app sets after it, a
resource it cannot apply, an OTLP endpoint from the environment without a scheme."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import run_python


def _stderr_of(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", **env})


def test_a_provider_the_app_sets_after_configure_gets_a_warning_with_the_fix() -> None:
    proc = _stderr_of(
        """
        import opto
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        opto.configure(service_name="api")
        trace.set_tracer_provider(TracerProvider())
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "application set its own TracerProvider after opto.configure()" in proc.stderr
    assert "Call opto.configure() after trace.set_tracer_provider" in proc.stderr


def test_configure_after_the_apps_provider_keeps_it_quietly() -> None:
    proc = _stderr_of(
        """
        import opto
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        mine = TracerProvider()
        trace.set_tracer_provider(mine)
        opto.configure(console=True)
        assert trace.get_tracer_provider() is mine
        """
    )
    assert proc.returncode == 0 and "opto:" not in proc.stderr, proc.stderr


def test_service_name_with_an_existing_provider_warns() -> None:
    proc = _stderr_of(
        """
        import opto
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        trace.set_tracer_provider(TracerProvider())
        opto.configure(service_name="api", resource_attributes={"deployment.environment": "prod"})
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "service_name and resource_attributes were not applied" in proc.stderr


def test_an_otlp_endpoint_from_the_environment_without_a_scheme_is_refused() -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        proc = _stderr_of("import opto; opto.configure()", **{name: "localhost:4318"})
        assert proc.returncode != 0
        assert f"ValueError: {name} must start with http:// or https://" in proc.stderr


def test_an_otlp_endpoint_from_the_environment_with_a_scheme_is_taken() -> None:
    run_python(
        """
        import os
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9"
        os.environ["OTEL_METRIC_EXPORT_INTERVAL"] = "3600000"
        import opto
        opto.configure()
        opto.shutdown(0.1)
        """
    )


def test_a_configure_that_raises_leaves_nothing_running_or_applied() -> None:
    """A bad dashboard URL is found after the OTLP exporters are built: they are stopped, and the
    call_durations switch is left as it was, so a corrected configure() starts clean."""
    out = run_python(
        """
        import threading, opto
        from opto.telemetry import _facade
        try:
            opto.configure(otlp_endpoint="http://127.0.0.1:1", dashboard="ftp://nope", call_durations=False)
        except ValueError as exc:
            print("raised", exc)
        print(sorted(t.name for t in threading.enumerate() if t is not threading.main_thread()), _facade._durations_on)
        """
    )
    assert out.splitlines() == [
        "raised dashboard must be a URL such as http://127.0.0.1:8765, got 'ftp://nope'",
        "[] True",
    ]
