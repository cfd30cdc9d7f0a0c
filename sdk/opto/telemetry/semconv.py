"""Every attribute, event and metric name OpenTrace emits, in one place.

The SDK writes these names and the dashboard reads them, so they cannot drift apart.
OpenTelemetry semantic conventions are used where one exists; ours carry the `opto.` prefix.
"""

from typing import Final

__all__ = [
    "CODE_FUNCTION_NAME", "CODE_FILE_PATH", "CODE_LINE_NUMBER", "ERROR_TYPE",
    "EXCEPTION_TYPE", "EXCEPTION_MESSAGE", "EXCEPTION_STACKTRACE", "SERVICE_NAME",
    "OUTCOME", "OUTCOME_OK", "OUTCOME_ERROR", "OUTCOME_TIMEOUT", "OUTCOME_CANCELLED", "OUTCOMES",
    "ATTEMPTS", "ATTEMPT", "TIMEOUT_S", "CONCURRENCY", "TASK_NAME", "ARG_PREFIX", "RESULT",
    "RETRY_DELAY_S", "RETRY_EXHAUSTED", "QUEUE_WAIT_S", "SPAN_KIND", "DEBUG_CREATION_STACK",
    "DEBUG_DURATION_S", "DEBUG_HANDLE", "EVENT_RETRY", "EVENT_TIMEOUT", "EVENT_CANCELLED",
    "EVENT_SLOW_CALLBACK", "METRIC_CALL_DURATION", "METRIC_CALLS_ACTIVE", "METRIC_RETRIES",
    "METRIC_QUEUE_WAIT", "FUNCTION",
]

# OpenTelemetry semantic conventions.
CODE_FUNCTION_NAME: Final = "code.function.name"
CODE_FILE_PATH: Final = "code.file.path"
CODE_LINE_NUMBER: Final = "code.line.number"
ERROR_TYPE: Final = "error.type"
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"
EXCEPTION_STACKTRACE: Final = "exception.stacktrace"
SERVICE_NAME: Final = "service.name"

# Outcome of a traced call: exactly one of four, never conflated.
OUTCOME: Final = "opto.outcome"
OUTCOME_OK: Final = "ok"
OUTCOME_ERROR: Final = "error"
OUTCOME_TIMEOUT: Final = "timeout"
OUTCOME_CANCELLED: Final = "cancelled"
OUTCOMES: Final = (OUTCOME_OK, OUTCOME_ERROR, OUTCOME_TIMEOUT, OUTCOME_CANCELLED)

# Span attributes of a traced call.
SPAN_KIND: Final = "opto.kind"  # "call", "stream", "context", "batch", "queue", ...
FUNCTION: Final = "opto.function"  # the traced function's qualified name, on metrics too
ATTEMPTS: Final = "opto.attempts"
ATTEMPT: Final = "opto.attempt"
TIMEOUT_S: Final = "opto.timeout_s"
CONCURRENCY: Final = "opto.concurrency"
TASK_NAME: Final = "opto.task.name"
ARG_PREFIX: Final = "opto.arg."
RESULT: Final = "opto.result"
RETRY_DELAY_S: Final = "opto.retry.delay_s"
RETRY_EXHAUSTED: Final = "opto.retry.exhausted"
QUEUE_WAIT_S: Final = "opto.queue.wait_s"
DEBUG_CREATION_STACK: Final = "opto.debug.creation_stack"
DEBUG_DURATION_S: Final = "opto.debug.duration_s"
DEBUG_HANDLE: Final = "opto.debug.handle"

# Span events.
EVENT_RETRY: Final = "opto.retry"
EVENT_TIMEOUT: Final = "opto.timeout"
EVENT_CANCELLED: Final = "opto.cancelled"
EVENT_SLOW_CALLBACK: Final = "opto.debug.slow_callback"

# Metrics.
METRIC_CALL_DURATION: Final = "opto.call.duration"
METRIC_CALLS_ACTIVE: Final = "opto.calls.active"
METRIC_RETRIES: Final = "opto.retries"
METRIC_QUEUE_WAIT: Final = "opto.queue.wait"
