"""Turn call arguments, results and exceptions into short, secret-free span attribute strings.

Capture is total and bounded: it never raises into the application, and it costs O(`limit`)
whatever the value (text is cut before it is formatted, containers are walked only as far as the
limit, buffers and arrays are described rather than printed, and a `__repr__` that once took longer
than `REPR_BUDGET_S` is skipped for its type from then on). What could not be captured is written
to `opto.capture.error`, never raised. This runs on every traced call, so the common shapes (a
short string, a number, a small dict or list of those) take the builtin `repr` after a few checks.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from ..telemetry import scrub, semconv

__all__ = [
    "MASK", "DEFAULT_MAX_LENGTH", "REPR_BUDGET_S", "looks_secret", "safe_repr", "capture_into",
    "exception_text", "exception_stacktrace", "ArgumentCapture", "Remembered", "capture_named", "scrub_text",
    "attribute_value",
]

MASK = scrub.MASK
DEFAULT_MAX_LENGTH = 1000
REPR_BUDGET_S = 0.005  # a __repr__ slower than this once is skipped for its type from then on
STACKTRACE_MAX = 16_000  # characters of `exception.stacktrace`: its first and last parts are kept
_SCALAR_TYPES = frozenset({float, bool, type(None)})
_FLAT_TYPES = frozenset({dict, list, tuple})
_FLAT_ITEMS = 32  # a container this small, of short scalars only, takes the builtin repr
_FLAT_STR = 256
_FLAT_INT = 1 << 64
_INT_CHARS = 20  # the most characters such an int's repr takes
_DEPTH = 3  # containers nested deeper are described by type and size
_REMEMBER_STR = 256  # a clean str this short is remembered with its text, per argument and result

# Types whose __repr__ went over budget are skipped, and the fields of record types (dataclass,
# pydantic) are remembered, up to _KNOWN_MAX types each.
_SLOW_TYPES: set[type] = set()
_FIELDS: dict[type, tuple[str, ...] | None] = {}
_KNOWN_MAX = 4096
_SELF_NAMES = frozenset({"self", "cls"})
_suspect = scrub.suspect  # bound once: it runs on every captured string
_VALUE_MIN = scrub.VALUE_MIN


def _secret_part(key: object) -> str | None:
    """The secret-looking part of a name (see `opto.telemetry.scrub.NAME_PATTERNS`), or None."""
    if not isinstance(key, str):
        return None
    if type(key) is not str:  # a str subclass could hash, compare or search in any way: judge its text
        key = str.__getitem__(key, slice(None))
    return scrub.rules.name_match(key)


def looks_secret(key: object) -> bool:
    """True for names such as password, api_key, openai_key, Authorization, bearer, session_id."""
    return _secret_part(key) is not None


def _masked(path: str, value: Any, matched: str, limit: int, depth: int, errors: list[str] | None) -> str:
    """MASK, unless the configured scrub callback returns a value to keep for this one."""
    callback = scrub.rules.callback
    if callback is None:
        return MASK
    try:
        kept = callback(scrub.ScrubMatch(path, value, matched))
    except Exception as exc:
        if errors is not None:
            errors.append(f"scrub callback failed: {_name(type(exc))}; masked")
        return MASK
    return MASK if kept is None else _walk(kept, limit, depth, errors, path)


def scrub_text(text: str, path: str = "") -> str:
    """`text` with every secret-looking value in it (bearer token, JWT, API key) masked."""
    if not _suspect(text):
        return text
    rules = scrub.rules
    if rules.values.search(text) is None:
        return text
    callback = rules.callback

    def one(found: Any) -> str:
        if callback is not None:
            try:
                kept = callback(scrub.ScrubMatch(path, found.group(), found.group()))
            except Exception:
                return MASK
            if kept is not None:
                return str.__str__(kept) if isinstance(kept, str) else MASK
        return MASK

    return rules.values.sub(one, text)


def _name(t: type) -> str:
    try:
        return str(type.__getattribute__(t, "__qualname__"))
    except Exception:  # a metaclass can make even this raise
        return "object"


def _failed(value: object, exc: BaseException, errors: list[str] | None) -> str:
    what = f"{_name(type(value))} repr failed: {_name(type(exc))}"
    if errors is not None:
        errors.append(what)
    return f"<{what}>"


def _items(value: Any, limit: int, depth: int, errors: list[str] | None, pairs: bool, path: str) -> str:
    """The items of a builtin container, each cut to what is left of `limit`, stopping there."""
    parts = []
    used = 2
    if pairs:
        iterator = iter(dict.items(value) if isinstance(value, dict) else value.items())
    else:  # a builtin container's own iteration, whatever a subclass overrides
        own = _BUILTIN_ITER.get(type(value)) or next(i for t, i in _BUILTIN_ITER.items() if isinstance(value, t))
        iterator = own(value)
    for item in iterator:
        if used >= limit:
            parts.append("…")
            break
        if pairs:
            k, v = item
            shown = _named(k, v, path, limit - used, depth - 1, errors)
            part = f"{_walk(k, 80, 1, errors, path)}: {shown}"
        else:
            part = _walk(item, limit - used, depth - 1, errors, path)
        parts.append(part)
        used += len(part) + 2
    return ", ".join(parts)


_BUILTIN_ITER: dict[type, Callable[[Any], Any]] = {
    t: t.__iter__ for t in (list, tuple, set, frozenset, deque)
}


def _named(name: Any, value: Any, path: str, limit: int, depth: int, errors: list[str] | None) -> str:
    """The value of a named part (a dict key, a field), masked if the name looks secret."""
    matched = _secret_part(name)
    if matched is None:
        inner = f"{path}.{str.__getitem__(name, slice(None, 80))}" if isinstance(name, str) else path
        return _walk(value, limit, depth, errors, inner)
    return _masked(f"{path}.{str.__getitem__(name, slice(None, 80))}", value, matched, limit, depth, errors)


def _walk(value: Any, limit: int, depth: int, errors: list[str] | None, path: str = "") -> str:
    """The careful path: never raises, never formats more than about `limit` characters."""
    t = type(value)
    try:
        if isinstance(value, str):  # a subclass's own slicing and repr are not called
            return repr(scrub_text(str.__getitem__(value, slice(None, limit)), path))
        if t is int:
            if value.bit_length() > 4 * limit:  # more digits than fit: do not format them
                return f"<int of {value.bit_length()} bits>"
            return repr(value)
        if t in _SCALAR_TYPES:
            return repr(value)
        if isinstance(value, (bytes, bytearray)):
            head = repr(bytes(memoryview(value)[:limit]))
            return head if t is bytes else f"{_name(t)}({head})"
        if isinstance(value, memoryview):
            return f"<memoryview nbytes={value.nbytes} format={value.format!r} shape={value.shape!r}>"
        if isinstance(value, (dict, list, tuple, set, frozenset, deque)) or isinstance(value, Mapping):
            return _container(value, limit, depth, errors, path)
        fields = _FIELDS[t] if t in _FIELDS else _record_fields(t)
        if fields:
            return _record(value, fields, limit, depth, errors, path)
        # An array is described by its shape; a 0-d one (a numpy scalar) takes its repr, which is short.
        if _array_like(t) and type(shape := value.shape) is tuple and shape:
            return _array(value, shape, errors)
        return scrub_text(_budgeted_repr(value, errors), path)
    except Exception as exc:  # a hostile __repr__, __iter__, __len__ or __hash__ must not break the call
        return _failed(value, exc, errors)


def _record_fields(t: type) -> tuple[str, ...] | None:
    """The field names of a dataclass or pydantic model (as their repr shows them), else None."""
    fields: tuple[str, ...] | None = None
    if dataclasses.is_dataclass(t):
        fields = tuple(f.name for f in dataclasses.fields(t) if f.repr)
    elif isinstance(model_fields := getattr(t, "model_fields", None), dict) and hasattr(t, "model_dump"):  # pydantic 2
        fields = tuple(name for name, info in model_fields.items() if getattr(info, "repr", True))
    if len(_FIELDS) < _KNOWN_MAX:
        _FIELDS[t] = fields
    return fields


def _record(value: Any, fields: tuple[str, ...], limit: int, depth: int, errors: list[str] | None, path: str) -> str:
    """`Name(field=value, ...)` with the values of secret-looking fields masked."""
    head = _name(type(value))
    if depth <= 0:
        return f"<{head} object>"
    parts = []
    used = len(head) + 2
    for field in fields:
        if used >= limit:
            parts.append("…")
            break
        part = f"{field}={_named(field, getattr(value, field), path, limit - used, depth - 1, errors)}"
        parts.append(part)
        used += len(part) + 2
    return f"{head}({', '.join(parts)})"


def _container(value: Any, limit: int, depth: int, errors: list[str] | None, path: str) -> str:
    t = type(value)
    if depth <= 0:
        return f"<{_name(t)} of {len(value)} items>"
    if isinstance(value, Mapping) or isinstance(value, dict):
        return "{" + _items(value, limit, depth, errors, pairs=True, path=path) + "}"
    if isinstance(value, tuple):
        inner = _items(value, limit, depth, errors, pairs=False, path=path)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + _items(value, limit, depth, errors, pairs=False, path=path) + "]"
    if isinstance(value, deque):
        return "deque([" + _items(value, limit, depth, errors, pairs=False, path=path) + "])"
    if not value:
        return f"{_name(t)}()"
    inner = "{" + _items(value, limit, depth, errors, pairs=False, path=path) + "}"
    return inner if isinstance(value, set) and t is set else f"{_name(t)}({inner})"


def _array_like(t: type) -> bool:
    """numpy arrays, pandas frames, tensors: their repr formats (and may copy) the data."""
    return hasattr(t, "shape") and (hasattr(t, "dtype") or hasattr(t, "__array__"))


def _array(value: Any, shape: tuple[Any, ...], errors: list[str] | None) -> str:
    dtype = getattr(value, "dtype", None)
    text = f"<{_name(type(value))} shape={_walk(shape, 80, 1, errors)}"
    return text + ("" if dtype is None else f" dtype={_walk(str(dtype), 40, 0, errors)[1:-1]}") + ">"


def _budgeted_repr(value: Any, errors: list[str] | None) -> str:
    t = type(value)
    if t in _SLOW_TYPES:
        return f"<{_name(t)} object>"
    t0 = time.perf_counter()
    text = repr(value)
    if time.perf_counter() - t0 > REPR_BUDGET_S and len(_SLOW_TYPES) < _KNOWN_MAX:
        _SLOW_TYPES.add(t)
        if errors is not None:
            errors.append(f"{_name(t)}.__repr__ took over {REPR_BUDGET_S * 1000:g} ms: skipped from now on")
    return text


def _quick(value: Any, limit: int) -> str | None:
    """The builtin repr for the common shapes, or None when the careful walk must run."""
    t = type(value)
    if t is str:
        text = value if len(value) <= limit else value[:limit]
        return None if _suspect(text) else repr(text)
    if t in _SCALAR_TYPES or (t is int and -_FLAT_INT < value < _FLAT_INT):
        return repr(value)
    if t in _FLAT_TYPES:
        return _flat_repr(value)
    return None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def safe_repr(value: Any, limit: int = DEFAULT_MAX_LENGTH, errors: list[str] | None = None, path: str = "") -> str:
    """A `repr` cut to `limit` characters, with secrets masked: the values of secret-looking dict
    keys and dataclass or pydantic fields, and secret-looking text (tokens, keys) anywhere.

    Never raises; what could not be formatted reads `<T repr failed: E>` and is added to `errors`.
    """
    text = _quick(value, limit)
    if text is None:
        text = _walk(value, limit, _DEPTH, errors, path)
    return _cut(text, limit)


def capture_into(out: dict[str, Any], key: str, value: Any, limit: int) -> None:
    """`out[key] = safe_repr(value, limit)`, noting in `out` what could not be captured."""
    t = type(value)
    if t is str:  # the commonest values, on every traced call, first
        if len(value) <= limit and not _suspect(value):
            out[key] = repr(value)
            return
    elif t is int:
        if -_FLAT_INT < value < _FLAT_INT and limit > _INT_CHARS:
            out[key] = repr(value)
            return
    elif t in _FLAT_TYPES:
        text = _flat_repr(value)
        if text is not None:
            out[key] = _cut(text, limit)
            return
    text = _quick(value, limit)
    if text is None:
        errors: list[str] = []
        text = _walk(value, limit, _DEPTH, errors, key)
        if errors:
            _note(out, key, errors, limit)
    out[key] = _cut(text, limit)


def _note(out: dict[str, Any], key: str, errors: list[str], limit: int = DEFAULT_MAX_LENGTH) -> None:
    """Add `key: what failed` to `out`'s `opto.capture.error`."""
    line = f"{key}: {'; '.join(errors)}"
    before = out.get(semconv.CAPTURE_ERROR)
    out[semconv.CAPTURE_ERROR] = _cut(line if before is None else f"{before}\n{line}", limit)


def _flat_repr(value: dict[Any, Any] | list[Any] | tuple[Any, ...]) -> str | None:
    """The builtin repr of `value` when it is safe and short, else None: few items, each a small
    int, a float, None or a short string, for a dict keys all already judged plain (`_walk` judges
    new ones, so a shape seen once takes this path from then on), and no secret in the text."""
    if len(value) > _FLAT_ITEMS:
        return None
    if type(value) is dict:
        for k, v in value.items():
            t = type(v)
            if type(k) is not str or not (
                (t is str and len(v) <= _FLAT_STR) or (t is int and -_FLAT_INT < v < _FLAT_INT) or t in _SCALAR_TYPES
            ):
                return None
        if not scrub.rules.plain.issuperset(value):  # every key is an exact str: no user code runs
            return None
    else:
        for v in value:
            t = type(v)
            if not ((t is str and len(v) <= _FLAT_STR) or (t is int and -_FLAT_INT < v < _FLAT_INT) or t in _SCALAR_TYPES):
                return None
    text = repr(value)
    return None if _suspect(text) else text


def exception_text(exc: BaseException, limit: int = DEFAULT_MAX_LENGTH) -> tuple[str, str | None]:
    """`str(exc)` cut to `limit`, and what failed if it could not be had (a raising `__str__`).

    An exception with the default `__str__` and one non-str argument is shown by `safe_repr` of
    that argument, so a huge argument is not formatted in full.
    """
    t = type(exc)
    try:
        args = exc.args
        if t.__str__ is BaseException.__str__ and len(args) == 1 and type(args[0]) is not str:
            errors: list[str] = []
            text = safe_repr(args[0], limit, errors)
            return text, "; ".join(errors) or None
        return _cut(scrub_text(str(exc)), limit), None
    except Exception as failure:
        what = f"{_name(t)}.__str__ failed: {_name(type(failure))}"
        return f"<{what}>", what


def exception_stacktrace(exc: BaseException) -> str:
    """The formatted traceback of `exc`, its first and last parts when longer than STACKTRACE_MAX."""
    try:
        text = "".join(traceback.format_exception(exc))
    except Exception:
        text = "".join(traceback.format_tb(exc.__traceback__)) + f"{_name(type(exc))}: <message unavailable>\n"
    if len(text) <= STACKTRACE_MAX:
        return text
    half = STACKTRACE_MAX // 2
    return f"{text[:half]}\n…\n{text[-half:]}"


class ArgumentCapture:
    """Maps a call's arguments to `opto.arg.<name>` attributes, for one function's signature.

    A first parameter named `self` or `cls` is not captured. Which names are masked is decided once
    per name, and again after `opto.configure(scrub=...)` changes the rules.
    """

    __slots__ = ("positional", "_first", "_var_positional", "_keyword", "_limit", "_names", "_rules")

    def __init__(self, fn: Callable[..., Any], limit: int) -> None:
        names: list[str] = []
        self._var_positional = semconv.ARG_PREFIX + "args"
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            params = ()  # type: ignore[assignment]
        for p in params:
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                names.append(p.name)
            elif p.kind is p.VAR_POSITIONAL:
                self._var_positional = semconv.ARG_PREFIX + p.name
        self._names = tuple(names)
        self._limit = limit
        self._plan()

    def _plan(self) -> None:
        self._rules = scrub.rules
        names = self._names
        self._first = 1 if names and names[0] in _SELF_NAMES else 0  # `self` or `cls`: not captured
        # One slot per positional parameter after that: its key, whether it is masked, its last value.
        self.positional = tuple(Remembered(semconv.ARG_PREFIX + name, _secret_part(name)) for name in names[self._first:])
        self._keyword: dict[str, Remembered] = {}  # the same for keyword names, as they are seen

    def add(self, out: dict[str, Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        """Add the call's `opto.arg.<name>` attributes to `out` (and `opto.capture.error` if needed)."""
        if self._rules is not scrub.rules:
            self._plan()
        limit = self._limit
        # A str or int that is the very object this parameter had last time takes its text again
        # (inlined: most arguments of most calls are, and a Python call costs as much as the road).
        for slot, value in zip(self.positional, args[self._first:] if self._first else args):
            seen = slot.seen
            if seen[0] is value:
                out[slot.key] = seen[1]
            else:
                slot.capture(out, value, limit)
        if len(args) > len(self._names):
            capture_into(out, self._var_positional, args[len(self._names):], limit)
        if kwargs:
            keyword = self._keyword
            for name, value in kwargs.items():
                plan = keyword.get(name) if type(name) is str else None  # a str subclass's hash is not called
                if plan is None:
                    plan = self._keyword_slot(name)
                seen = plan.seen
                if seen[0] is value:
                    out[plan.key] = seen[1]
                else:
                    plan.capture(out, value, limit)

    def _keyword_slot(self, name: str) -> Remembered:
        """The slot of a keyword argument not seen before, kept for next time (up to `_KNOWN_MAX` names)."""
        name = str.__getitem__(name, slice(None, 200))  # a str subclass's own methods are not called
        plan = Remembered(semconv.ARG_PREFIX + name, _secret_part(name))
        if len(self._keyword) < _KNOWN_MAX:
            self._keyword[name] = plan
        return plan


class Remembered:
    """One place a value is captured to (an argument, the result): its attribute key, the
    secret-looking part of its name (then the value is masked), and the last str or int captured
    there with its text: the same object next time (a literal, a constant, a small int) takes that
    text again, with no check or `repr`. Holds a reference to it (a str only up to `_REMEMBER_STR`
    characters). The scrub rules cannot change what such a value's text is: only text the fixed
    pre-check (`scrub.suspect`) flags is searched for secrets, and that is never remembered."""

    __slots__ = ("seen", "key", "secret")

    def __init__(self, key: str, secret: str | None = None) -> None:
        self.seen: tuple[object, str] = (_NOTHING, "")  # replaced whole: a reader never sees half of it
        self.key = key
        self.secret = secret

    def capture(self, out: dict[str, Any], value: Any, limit: int) -> None:
        """`out[key]` = the capture of `value` (see `capture_into`), remembering a clean str or small
        int. The hot callers take `seen`'s text themselves when `value` is the one remembered."""
        key = self.key
        if self.secret is not None:
            _capture_masked(out, key, value, self.secret, limit)
            return
        t = type(value)
        # `not scrub.suspect(value)`, inlined: a new str each call (a prompt) comes here, and the
        # function call cost as much as the check (tests/test_scrub.py holds the two together).
        if t is str and len(value) <= limit and (
            len(value) < _VALUE_MIN or not ("eyJ" in value or "sk-" in value or "IA" in value or "bearer" in value.lower())
        ):
            out[key] = text = repr(value)
            if len(value) <= _REMEMBER_STR:
                self.seen = (value, text)
        elif t is int and -_FLAT_INT < value < _FLAT_INT and limit > _INT_CHARS:
            out[key] = text = repr(value)
            self.seen = (value, text)
        elif t in _FLAT_TYPES and (flat := _flat_repr(value)) is not None:  # a new small dict or list each call
            out[key] = flat if len(flat) <= limit else _cut(flat, limit)
        else:
            capture_into(out, key, value, limit)


_NOTHING = object()


def capture_named(out: dict[str, Any], key: str, name: str, value: Any, limit: int) -> None:
    """`out[key]` = the capture of `value`, masked if `name` looks secret (as arguments are)."""
    secret = _secret_part(name)
    if secret is None:
        capture_into(out, key, value, limit)
    else:
        _capture_masked(out, key, value, secret, limit)


def _capture_masked(out: dict[str, Any], key: str, value: Any, secret: str, limit: int) -> None:
    """`out[key]` for a value whose name looks secret: MASK unless the scrub callback keeps it."""
    if scrub.rules.callback is None:
        out[key] = MASK
        return
    errors: list[str] = []
    out[key] = _cut(_masked(key, value, secret, limit, _DEPTH, errors), limit)
    if errors:
        _note(out, key, errors, limit)


def attribute_value(name: str, value: Any, errors: list[str], limit: int = DEFAULT_MAX_LENGTH) -> str | int | float | bool:
    """A value for a span attribute or event attribute set by the app: a bool, int or float as
    itself, a str cut to `limit` with secrets in it masked, anything else captured as an argument
    is; masked whole, as an argument would be, when `name` looks secret."""
    secret = _secret_part(name)
    if secret is not None:
        return _cut(_masked(name, value, secret, limit, _DEPTH, errors), limit)
    t = type(value)
    if t is bool or t is float or (t is int and -_FLAT_INT < value < _FLAT_INT):
        return value  # type: ignore[no-any-return]
    if t is str:
        return _cut(scrub_text(value[:limit], name), limit)
    return safe_repr(value, limit, errors, name)
