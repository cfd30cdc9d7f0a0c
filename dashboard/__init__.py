"""opto-dashboard: the live local web dashboard for OpenTrace telemetry."""
