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


def looks_secret(key: object) -> bool:
    """True for names such as password, token, api_key, Authorization, client_secret."""
    return isinstance(key, str) and _SECRET.search(key) is not None


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


def safe_repr(value: Any, limit: int = DEFAULT_MAX_LENGTH) -> str:
    """A `repr` cut to `limit` characters, with the values of secret-looking mapping keys masked."""
    return _shorten(_repr(value, limit, depth=3), limit)


class ArgumentCapture:
    """Maps a call's arguments to `opto.arg.<name>` attributes, for one function's signature."""

    __slots__ = ("_names", "_keys", "_var_positional", "_limit")

    def __init__(self, fn: Callable[..., Any], limit: int) -> None:
        positional: list[str] = []
        self._var_positional: str | None = None
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            params = ()  # type: ignore[assignment]
        for p in params:
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                positional.append(p.name)
            elif p.kind is p.VAR_POSITIONAL:
                self._var_positional = p.name
        self._names = tuple(positional)
        self._keys = tuple(semconv.ARG_PREFIX + n for n in positional)
        self._limit = limit

    def attributes(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, str]:
        limit = self._limit
        out: dict[str, str] = {}
        names = self._names
        for i, value in enumerate(args):
            if i < len(names):
                name = names[i]
                out[self._keys[i]] = MASK if looks_secret(name) else safe_repr(value, limit)
            else:
                rest = args[len(names):]
                out[semconv.ARG_PREFIX + (self._var_positional or "args")] = safe_repr(rest, limit)
                break
        for name, value in kwargs.items():
            out[semconv.ARG_PREFIX + name] = MASK if looks_secret(name) else safe_repr(value, limit)
        return out
