"""The SDK's core: the one traced-call engine and what it is made of.

`opto.trace` builds its public names from the names below, and only these: options and their
checks, the engine (`Calls`, `Call` and its one `end`), the one exception-to-outcome rule
(`outcome_of`), capture, ad-hoc spans, scope, retry, debug, loops and wake-ups; the asyncio instrumentation.
Nothing here imports `opto.trace`.
"""

from .adhoc import add_event, set_attributes, span
from .capture import DEFAULT_MAX_LENGTH, MASK, capture_into, capture_named, looks_secret, safe_repr
from .debug import set_async_debug
from .instrument import instrument_asyncio, uninstrument_asyncio
from .engine import Calls, is_traced_call, wrap_coroutine_function, wrap_function
from .loops import gather_in_task_group, in_thread, running_loop
from .options import NOT_SET, OPTION_NAMES, Options, check_options, check_timeout, for_methods_too, is_async_callable, label, span_name
from .outcome import outcome_of, record_error
from .retry import PolicyName, RetryPolicy, resolve_policy, set_testing
from .scope import CALL, HANDOFF, SCOPE, HandOff, Limiter, Scope
from .stream import wrap_async_generator_function
from .wakeup import Wakeup

__all__ = [
    "add_event", "set_attributes", "span", "instrument_asyncio", "uninstrument_asyncio",
    "DEFAULT_MAX_LENGTH", "MASK", "capture_into", "capture_named", "looks_secret", "safe_repr", "set_async_debug",
    "Calls", "is_traced_call", "wrap_coroutine_function", "wrap_function", "gather_in_task_group", "in_thread", "running_loop",
    "NOT_SET", "OPTION_NAMES", "Options", "check_options", "check_timeout", "for_methods_too", "is_async_callable", "label", "span_name",
    "outcome_of", "record_error", "PolicyName", "RetryPolicy", "resolve_policy", "set_testing",
    "CALL", "HANDOFF", "SCOPE", "HandOff", "Limiter", "Scope", "wrap_async_generator_function", "Wakeup",
]
