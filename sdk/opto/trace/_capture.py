"""Turn call arguments and results into short, secret-free span attribute strings."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..telemetry import semconv

__all__ = ["MASK", "DEFAULT_MAX_LENGTH", "looks_secret", "safe_repr", "ArgumentCapture"]

MASK = "[masked]"
DEFAULT_MAX_LENGTH = 1000
_SECRET = re.compile(r"pass(word|wd|phrase)?|token|api[-_]?key|authori[sz]ation|secret|cookie|credential", re.I)
_SCALARS = (int, float, bool, type(None))


_verdicts: dict[str, bool] = {}  # names repeat call after call: decide each once


def looks_secret(key: object) -> bool:
    """True for names such as password, token, api_key, Authorization, client_secret."""
    if not isinstance(key, str):
        return False
    verdict = _verdicts.get(key)
    if verdict is None:
        verdict = _SECRET.search(key) is not None
        if len(_verdicts) < 4096:
            _verdicts[key] = verdict
    return verdict


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def _repr(value: Any, limit: int, depth: int) -> str:
    if isinstance(value, str):
        return repr(value[:limit])
    if isinstance(value, _SCALARS):
        return repr(value)
    if depth > 0 and isinstance(value, Mapping):
        parts = []
        used = 2
        for k, v in value.items():
            if used >= limit:
                parts.append("…")
                break
            shown = MASK if looks_secret(k) else _repr(v, limit - used, depth - 1)
            part = f"{_repr(k, 80, 0)}: {shown}"
            parts.append(part)
            used += len(part) + 2
        return "{" + ", ".join(parts) + "}"
    if depth > 0 and isinstance(value, (list, tuple)):
        parts = []
        used = 2
        for item in value:
            if used >= limit:
                parts.append("…")
                break
            part = _repr(item, limit - used, depth - 1)
            parts.append(part)
            used += len(part) + 2
        inner = ", ".join(parts)
        if isinstance(value, tuple):
            return f"({inner},)" if len(value) == 1 else f"({inner})"
        return f"[{inner}]"
    try:
        return repr(value)
    except Exception as exc:  # a broken __repr__ must not break the traced call
        return f"<{type(value).__qualname__} repr failed: {type(exc).__name__}>"


_FLAT_ITEMS = 32  # a container this small, of short scalars only, takes the builtin repr
_FLAT_STR = 256


def _flat(value: Any) -> bool:
    """Whether the builtin repr of `value` is safe and short: few scalar items, no secret keys."""
    if len(value) > _FLAT_ITEMS:
        return False
    if type(value) is dict:
        for k, v in value.items():
            t = type(v)
            if not (t in _SCALAR_TYPES or (t is str and len(v) <= _FLAT_STR)) or looks_secret(k):
                return False
        return True
    for v in value:
        t = type(v)
        if not (t in _SCALAR_TYPES or (t is str and len(v) <= _FLAT_STR)):
            return False
    return True


_SCALAR_TYPES = frozenset({int, float, bool, type(None)})
_FLAT_TYPES = frozenset({dict, list, tuple})


def safe_repr(value: Any, limit: int = DEFAULT_MAX_LENGTH) -> str:
    """A `repr` cut to `limit` characters, with the values of secret-looking mapping keys masked."""
    t = type(value)
    if t is str:
        text = repr(value if len(value) <= limit else value[:limit])
    elif t in _SCALAR_TYPES or (t in _FLAT_TYPES and _flat(value)):
        text = repr(value)
    else:
        text = _repr(value, limit, depth=3)
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


class ArgumentCapture:
    """Maps a call's arguments to `opto.arg.<name>` attributes, for one function's signature."""

    __slots__ = ("_positional", "_var_positional", "_keyword", "_limit")

    def __init__(self, fn: Callable[..., Any], limit: int) -> None:
        positional: list[tuple[str, bool]] = []
        self._var_positional = semconv.ARG_PREFIX + "args"
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            params = ()  # type: ignore[assignment]
        for p in params:
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                positional.append((semconv.ARG_PREFIX + p.name, looks_secret(p.name)))
            elif p.kind is p.VAR_POSITIONAL:
                self._var_positional = semconv.ARG_PREFIX + p.name
        self._positional = tuple(positional)  # (attribute key, masked) per positional parameter
        self._keyword: dict[str, tuple[str, bool]] = {}  # the same for keyword names, as they are seen
        self._limit = limit

    def add(self, out: dict[str, Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        """Add the call's `opto.arg.<name>` attributes to `out`."""
        limit = self._limit
        for (key, masked), value in zip(self._positional, args):
            out[key] = MASK if masked else safe_repr(value, limit)
        if len(args) > len(self._positional):
            out[self._var_positional] = safe_repr(args[len(self._positional):], limit)
        for name, value in kwargs.items():
            plan = self._keyword.get(name)
            if plan is None:
                plan = self._keyword[name] = (semconv.ARG_PREFIX + name, looks_secret(name))
            out[plan[0]] = MASK if plan[1] else safe_repr(value, limit)
