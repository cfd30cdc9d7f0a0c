"""`opto.trace.param`: a trainable value whose `.value` is bound per run through a ContextVar.

Binding through `contextvars` lets many candidate parameter sets run concurrently in one process
without interfering; reading `.value` also records the parameter, so a search finds the ones a
workflow uses by running it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Generic, TypeVar


from .._core import safe_repr

__all__ = ["Param", "param", "bound", "recording"]

T = TypeVar("T")

_BOUND: ContextVar[Mapping[Param[Any], Any]] = ContextVar("opto_param_values", default={})
_READS: ContextVar[tuple[dict[Param[Any], Any], ...]] = ContextVar("opto_param_reads", default=())


class Param(Generic[T]):
    """A trainable parameter: `.value` is the value bound for the current run, else `initial`."""

    __slots__ = ("initial", "name", "description", "choices")

    def __init__(self, initial: T, name: str, description: str, choices: tuple[T, ...] | None) -> None:
        self.initial = initial
        self.name = name
        self.description = description
        self.choices = choices

    @property
    def value(self) -> T:
        value: T = _BOUND.get().get(self, self.initial)
        for reads in _READS.get():
            reads.setdefault(self, value)
        return value

    def __repr__(self) -> str:
        return f"<opto.trace.param {self.name}={safe_repr(self.value, 200)}>"


def param(value: T, *, name: str, description: str = "", choices: Sequence[T] | None = None) -> Param[T]:
    """Declare a trainable parameter (a prompt, a temperature, a tool choice) with its initial value.

    `choices` lists the values the built-in proposer of `@trace.optimize` may pick from.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"param name must be a non-empty str, got {name!r}")
    if not isinstance(description, str):
        raise TypeError(f"param description must be a str, got {type(description).__name__}")
    options: tuple[T, ...] | None = None
    if choices is not None:
        if isinstance(choices, (str, bytes)) or not isinstance(choices, Sequence):
            raise TypeError(f"param choices must be a list of values, got {choices!r}")
        options = tuple(choices)
        if value not in options:
            raise ValueError(f"param {name!r}: the initial value {safe_repr(value, 200)} must be one of choices {list(options)!r}")
    return Param(value, name, description, options)


@contextmanager
def bound(values: Mapping[Param[Any], Any], *, override: bool) -> Iterator[None]:
    """Bind parameter values for the code run inside; `override` lets them win over outer bindings."""
    outer = _BOUND.get()
    token = _BOUND.set({**outer, **values} if override else {**values, **outer})
    try:
        yield
    finally:
        _BOUND.reset(token)


@contextmanager
def recording() -> Iterator[dict[Param[Any], Any]]:
    """Collect the parameters whose `.value` is read inside (and in tasks started inside), with the first value read."""
    reads: dict[Param[Any], Any] = {}
    token = _READS.set((*_READS.get(), reads))
    try:
        yield reads
    finally:
        _READS.reset(token)
