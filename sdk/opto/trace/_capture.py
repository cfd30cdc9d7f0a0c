"""Turn call arguments and results into short, secret-free span attribute strings.

This runs on every traced call, so the common shapes (a short string, a number, a small dict or
list of those) take the builtin `repr` after a few checks; anything else takes the careful walk.
"""

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
_SCALAR_TYPES = frozenset(_SCALARS)
_FLAT_TYPES = frozenset({dict, list, tuple})
_FLAT_ITEMS = 32  # a container this small, of short scalars only, takes the builtin repr
_FLAT_STR = 256

# Names repeat call after call, so each is judged once; the sets stop growing at _KNOWN_MAX names.
_PLAIN: set[str] = set()
_SECRETS: set[str] = set()
_KNOWN_MAX = 4096


def looks_secret(key: object) -> bool:
    """True for names such as password, token, api_key, Authorization, client_secret."""
    if not isinstance(key, str) or key in _PLAIN:
        return False
    if key in _SECRETS:
        return True
    secret = _SECRET.search(key) is not None
    known = _SECRETS if secret else _PLAIN
    if len(known) < _KNOWN_MAX:
        known.add(key)
    return secret


def _repr(value: Any, limit: int, depth: int) -> str:
    if isinstance(value, str):
        return repr(value[:limit])
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
    except Exception as exc:  # a broken __repr__, or an int past Python's digit limit, must not break the call
        return f"<{type(value).__qualname__} repr failed: {type(exc).__name__}>"


def safe_repr(value: Any, limit: int = DEFAULT_MAX_LENGTH) -> str:
    """A `repr` cut to `limit` characters, with the values of secret-looking mapping keys masked."""
    t = type(value)
    try:
        if t is str:
            text = repr(value if len(value) <= limit else value[:limit])
        elif t in _SCALAR_TYPES:
            text = repr(value)
        elif t in _FLAT_TYPES and _flat(value):
            text = repr(value)
        else:
            text = _repr(value, limit, 3)
    except ValueError:  # an int too long for str(): the careful walk names it instead
        text = _repr(value, limit, 3)
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def _flat(value: dict[Any, Any] | list[Any] | tuple[Any, ...]) -> bool:
    """Whether the builtin repr of `value` is safe and short: few items, each a scalar or a short
    string, and for a dict, keys all already judged plain (`_repr` judges new ones, so a shape seen
    once takes this path from then on)."""
    if len(value) > _FLAT_ITEMS:
        return False
    if type(value) is dict:
        if not _PLAIN.issuperset(value):
            return False
        value = value.values()  # type: ignore[assignment]
    for v in value:
        t = type(v)
        if not (t in _SCALAR_TYPES or (t is str and len(v) <= _FLAT_STR)):
            return False
    return True


class ArgumentCapture:
    """Maps a call's arguments to `opto.arg.<name>` attributes, for one function's signature."""

    __slots__ = ("positional", "_var_positional", "_keyword", "_limit")

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
        self.positional = tuple(positional)  # (attribute key, masked) per positional parameter
        self._keyword: dict[str, tuple[str, bool]] = {}  # the same for keyword names, as they are seen
        self._limit = limit

    def add(self, out: dict[str, Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        """Add the call's `opto.arg.<name>` attributes to `out`."""
        limit = self._limit
        for (key, masked), value in zip(self.positional, args):
            out[key] = MASK if masked else safe_repr(value, limit)
        if len(args) > len(self.positional):
            out[self._var_positional] = safe_repr(args[len(self.positional):], limit)
        if kwargs:
            keyword = self._keyword
            for name, value in kwargs.items():
                plan = keyword.get(name)
                if plan is None:
                    plan = keyword[name] = (semconv.ARG_PREFIX + name, looks_secret(name))
                out[plan[0]] = MASK if plan[1] else safe_repr(value, limit)
