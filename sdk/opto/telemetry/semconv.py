"""Every attribute, event and metric name OpenTrace emits, in one place.

The SDK writes these names and the dashboard reads them, so they cannot drift apart.
OpenTelemetry semantic conventions are used where one exists; ours carry the `opto.` prefix.
"""

from typing import Final

__all__ = [
    "CODE_FUNCTION_NAME", "CODE_FILE_PATH", "CODE_LINE_NUMBER", "ERROR_TYPE",
    "EXCEPTION_TYPE", "EXCEPTION_MESSAGE", "EXCEPTION_STACKTRACE", "EXCEPTION_ESCAPED", "SERVICE_NAME",
    "PROCESS_PID", "HOST_NAME", "TELEMETRY_SDK_NAME", "TELEMETRY_SDK_VERSION",
    "OUTCOME", "OUTCOME_OK", "OUTCOME_ERROR", "OUTCOME_TIMEOUT", "OUTCOME_CANCELLED", "OUTCOMES",
    "TRUNCATED", "ATTEMPTS", "ATTEMPT", "TIMEOUT_S", "CONCURRENCY", "TASK_NAME", "ARG_PREFIX", "RESULT", "CAPTURE_ERROR",
    "RETRY_DELAY_S", "RETRY_EXHAUSTED", "QUEUE_WAIT_S", "SPAN_KIND", "DEBUG_CREATION_STACK",
    "DEBUG_DURATION_S", "DEBUG_HANDLE", "EVENT_RETRY", "EVENT_TIMEOUT", "EVENT_CANCELLED",
    "EVENT_SLOW_CALLBACK", "METRIC_CALL_DURATION", "METRIC_CALLS_ACTIVE", "METRIC_RETRIES",
    "METRIC_QUEUE_WAIT", "FUNCTION",
    "STREAM_ITEMS", "STREAM_FIRST_ITEM_S", "STREAM_CLOSED_EARLY",
    "QUEUE_NAME", "QUEUE_MAXSIZE", "QUEUE_BLOCKED_S", "EVENT_QUEUE_BLOCKED", "METRIC_QUEUE_DEPTH",
    "METRIC_QUEUE_PUT_BLOCKED", "METRIC_QUEUE_PRODUCERS", "METRIC_QUEUE_CONSUMERS",
    "METRICS_NAME", "METRICS_KEY", "METRIC_SUMMARY", "METRIC_BLOCK_DURATION", "METRIC_BLOCKS_ACTIVE",
    "METRIC_BLOCK_QUEUE_WAIT", "METRIC_BLOCK_CPU", "METRIC_BLOCK_MEMORY", "METRIC_BLOCK_VALUE",
    "SPAN_OPTIMIZE", "SPAN_OPTIMIZE_DEPTH", "SPAN_OPTIMIZE_CANDIDATE", "KIND_OPTIMIZE",
    "KIND_OPTIMIZE_DEPTH", "KIND_OPTIMIZE_CANDIDATE", "OPTIMIZE_STRATEGY", "OPTIMIZE_BEAM_WIDTH",
    "OPTIMIZE_NUM_PROPOSALS", "OPTIMIZE_MAX_DEPTH", "OPTIMIZE_MAX_CONCURRENT", "OPTIMIZE_DEPTH",
    "OPTIMIZE_CANDIDATE_ID", "OPTIMIZE_PARENT_ID", "OPTIMIZE_SCORE", "OPTIMIZE_PARAM_PREFIX",
    "OPTIMIZE_CANDIDATES", "OPTIMIZE_BEAM", "OPTIMIZE_BEST_ID", "OPTIMIZE_BEST_SCORE",
    "KIND_CONTEXT", "SPAN_SLOT_WAIT", "KIND_SLOT_WAIT", "KIND_TASK", "KIND_BATCH", "CONCURRENCY_LIMIT", "CONCURRENCY_PEAK", "RETRY_MAX_ATTEMPTS",
    "TASKS_COMPLETED", "TASKS_FAILED", "TASKS_TIMED_OUT", "TASKS_CANCELLED", "TASKS_RETRIED",
    "BATCH_INDEX", "BATCH_SIZE", "BATCH_COUNT", "BATCH_ITEMS",
    "SPAN_LOOP_BLOCKED", "KIND_LOOP_BLOCKED", "EVENT_LOOP_BLOCKED", "LOOP_BLOCKED_S", "LOOP_THRESHOLD_S", "LOOP_STACK",
    "SPAN_TASK", "KIND_ASYNCIO_TASK", "TASK_SITE", "TASK_PARENT_SITE", "METRIC_LOOP_LAG", "METRIC_TASKS_LIVE",
    "LOOP_QUANTILE",
]

# OpenTelemetry semantic conventions.
CODE_FUNCTION_NAME: Final = "code.function.name"
CODE_FILE_PATH: Final = "code.file.path"
CODE_LINE_NUMBER: Final = "code.line.number"
ERROR_TYPE: Final = "error.type"
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"
EXCEPTION_STACKTRACE: Final = "exception.stacktrace"
EXCEPTION_ESCAPED: Final = "exception.escaped"
SERVICE_NAME: Final = "service.name"
PROCESS_PID: Final = "process.pid"  # resource attributes the dashboard reads from OTLP senders
HOST_NAME: Final = "host.name"
TELEMETRY_SDK_NAME: Final = "telemetry.sdk.name"
TELEMETRY_SDK_VERSION: Final = "telemetry.sdk.version"

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
TRUNCATED: Final = "opto.truncated"  # the fields the live exporter cut to the shared limits
ATTEMPT: Final = "opto.attempt"
TIMEOUT_S: Final = "opto.timeout_s"
CONCURRENCY: Final = "opto.concurrency"
TASK_NAME: Final = "opto.task.name"
ARG_PREFIX: Final = "opto.arg."
RESULT: Final = "opto.result"
CAPTURE_ERROR: Final = "opto.capture.error"  # what argument, result or exception capture could not do
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

# @opto.trace.async_stream: one span per iteration run (opto.kind "stream").
STREAM_ITEMS: Final = "opto.stream.items"  # items yielded
STREAM_FIRST_ITEM_S: Final = "opto.stream.first_item_s"  # first __anext__ to first item
STREAM_CLOSED_EARLY: Final = "opto.stream.closed_early"  # aclose()/break/GC before exhaustion

# AsyncQueue. Item waits go to METRIC_QUEUE_WAIT with QUEUE_NAME; a consumer's traced work links
# to the producer's span with link attributes QUEUE_NAME and QUEUE_WAIT_S.
QUEUE_NAME: Final = "opto.queue.name"
QUEUE_MAXSIZE: Final = "opto.queue.maxsize"  # 0: unbounded
QUEUE_BLOCKED_S: Final = "opto.queue.blocked_s"
EVENT_QUEUE_BLOCKED: Final = "opto.queue.blocked"  # on the producer's span: put() waited for room
METRIC_QUEUE_DEPTH: Final = "opto.queue.depth"
METRIC_QUEUE_PUT_BLOCKED: Final = "opto.queue.put_blocked"
METRIC_QUEUE_PRODUCERS: Final = "opto.queue.producers"  # live tasks that have put items
METRIC_QUEUE_CONSUMERS: Final = "opto.queue.consumers"  # live tasks that have got items

# AsyncMetrics.monitor(name) blocks; summaries travel as METRIC_SUMMARY points (docs/api.md).
METRICS_NAME: Final = "opto.metrics.name"
METRICS_KEY: Final = "opto.metrics.key"  # a value the block recorded itself
METRIC_SUMMARY: Final = "opto.metrics.summary"
METRIC_BLOCK_DURATION: Final = "opto.metrics.duration"
METRIC_BLOCKS_ACTIVE: Final = "opto.metrics.active"
METRIC_BLOCK_QUEUE_WAIT: Final = "opto.metrics.queue_wait"
METRIC_BLOCK_CPU: Final = "opto.metrics.cpu_time"
METRIC_BLOCK_MEMORY: Final = "opto.metrics.memory.peak"
METRIC_BLOCK_VALUE: Final = "opto.metrics.value"

# @opto.trace.optimize: a search span, a span per depth under it, a span per candidate under that
# (depth 0, the starting values, sits directly under the search). Each carries SPAN_KIND and OUTCOME;
# a candidate whose evaluation failed has outcome "error" and no score. See docs/optimize.md.
SPAN_OPTIMIZE: Final = "opto.optimize"
SPAN_OPTIMIZE_DEPTH: Final = "opto.optimize.depth"
SPAN_OPTIMIZE_CANDIDATE: Final = "opto.optimize.candidate"
KIND_OPTIMIZE: Final = "optimize"
KIND_OPTIMIZE_DEPTH: Final = "optimize.depth"
KIND_OPTIMIZE_CANDIDATE: Final = "optimize.candidate"
OPTIMIZE_STRATEGY: Final = "opto.optimize.strategy"
OPTIMIZE_BEAM_WIDTH: Final = "opto.optimize.beam_width"
OPTIMIZE_NUM_PROPOSALS: Final = "opto.optimize.num_proposals"
OPTIMIZE_MAX_DEPTH: Final = "opto.optimize.max_depth"
OPTIMIZE_MAX_CONCURRENT: Final = "opto.optimize.max_concurrent"
OPTIMIZE_DEPTH: Final = "opto.optimize.depth_index"  # on depth and candidate spans; 0 = starting values
OPTIMIZE_CANDIDATE_ID: Final = "opto.optimize.candidate_id"  # unique within one search; 0 = starting values
OPTIMIZE_PARENT_ID: Final = "opto.optimize.parent_id"  # the beam member it was proposed from
OPTIMIZE_SCORE: Final = "opto.optimize.score"
OPTIMIZE_PARAM_PREFIX: Final = "opto.optimize.param."  # + parameter name: the value's safe repr
OPTIMIZE_CANDIDATES: Final = "opto.optimize.candidates"  # candidates evaluated (depth: new ones)
OPTIMIZE_BEAM: Final = "opto.optimize.beam"  # candidate ids kept after a depth, best first
OPTIMIZE_BEST_ID: Final = "opto.optimize.best_id"
OPTIMIZE_BEST_SCORE: Final = "opto.optimize.best_score"  # absent while every candidate failed

# AsyncTraceContext (kind "context"), the work it runs (kind "task": a run_parallel item that is not
# itself an @async_trace call, or one batch), and AsyncBatchProcessor runs (kind "batch").
KIND_CONTEXT: Final = "context"
# A traced call that must wait for a concurrency slot gets a child span covering the wait, so a
# live view can tell calls waiting for a slot from calls running.
SPAN_SLOT_WAIT: Final = "opto.slot.wait"
KIND_SLOT_WAIT: Final = "slot.wait"
KIND_TASK: Final = "task"
KIND_BATCH: Final = "batch"
CONCURRENCY_LIMIT: Final = "opto.concurrency.limit"  # max_concurrent; absent when unlimited
CONCURRENCY_PEAK: Final = "opto.concurrency.peak"  # most slots held at once
RETRY_MAX_ATTEMPTS: Final = "opto.retry.max_attempts"  # retries the policy allows after the first try
TASKS_COMPLETED: Final = "opto.tasks.completed"  # work that held a slot, by outcome: ok
TASKS_FAILED: Final = "opto.tasks.failed"  # ... error
TASKS_TIMED_OUT: Final = "opto.tasks.timed_out"  # ... timeout
TASKS_CANCELLED: Final = "opto.tasks.cancelled"  # ... cancelled
TASKS_RETRIED: Final = "opto.tasks.retried"  # retries made by that work
BATCH_INDEX: Final = "opto.batch.index"  # 0-based, in input order
BATCH_SIZE: Final = "opto.batch.size"  # items in this batch; on a run, the batch_size asked for
BATCH_COUNT: Final = "opto.batch.count"  # batches started in a run
BATCH_ITEMS: Final = "opto.batch.items"  # items read in a run

# asyncio instrumentation (docs/asyncio.md). A blocked event loop is a span of its own (kind
# "loop.blocked", from when the loop stopped answering to when it came back) and an event on the
# traced call that was running; with task_spans=True every task gets a span (kind "asyncio.task").
SPAN_LOOP_BLOCKED: Final = "opto.loop.blocked"
KIND_LOOP_BLOCKED: Final = "loop.blocked"
EVENT_LOOP_BLOCKED: Final = "opto.loop.blocked"
LOOP_BLOCKED_S: Final = "opto.loop.blocked_s"  # how long the loop did not answer (so far, on the event)
LOOP_THRESHOLD_S: Final = "opto.loop.threshold_s"
LOOP_STACK: Final = "opto.loop.stack"  # the loop thread's Python stack when it was seen blocked, innermost last
SPAN_TASK: Final = "opto.task"
KIND_ASYNCIO_TASK: Final = "asyncio.task"
TASK_SITE: Final = "opto.task.site"  # where the task was created: "file:line function"
TASK_PARENT_SITE: Final = "opto.task.parent_site"  # where the task that created it was created
METRIC_LOOP_LAG: Final = "opto.loop.lag"  # gauge, seconds: the loop's scheduling lag over the last minute
LOOP_QUANTILE: Final = "opto.loop.quantile"  # its attribute: "p50", "p99" or "max"
METRIC_TASKS_LIVE: Final = "opto.tasks.live"  # gauge: pending tasks, by creation site (TASK_SITE)
