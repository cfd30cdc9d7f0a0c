"""What counts as a secret: the one place holding the name and value patterns that capture masks.

Names (argument names, dict keys, dataclass and pydantic fields, attribute names) are matched
against `NAME_PATTERNS`; string values against `VALUE_PATTERNS` (bearer tokens, JWTs, `sk-` keys,
AWS access keys), where only the matched part is masked. `opto.configure(scrub=Scrub(...))`
adds name patterns and a callback that may let a matched value through.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["MASK", "KNOWN_MAX", "VALUE_MIN", "NAME_PATTERNS", "VALUE_PATTERNS", "Scrub", "suspect", "ScrubMatch", "Rules", "rules", "set_scrub"]

MASK = "[masked]"
KNOWN_MAX = 4096  # plain names remembered

# Searched anywhere in a name, case-insensitively: `openai_key`, `X-Auth-Token`, `sessionid`.
NAME_PATTERNS: tuple[str, ...] = (
    r"key", r"token", r"secret", r"pass(?:word|wd|phrase)?", r"pwd", r"auth(?!ors?(?:\b|_)|ored)", r"bearer",
    r"cookie", r"credential", r"session", r"private", r"signature", r"csrf", r"xsrf", r"jwt", r"ssn\b",
    r"credit[._ -]?card",
)
# Searched in string values: only the match is replaced by MASK.
VALUE_PATTERNS: tuple[str, ...] = (
    r"(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}",  # an Authorization header's credentials
    r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",  # a JWT
    r"\bsk-[A-Za-z0-9_-]{16,}",  # OpenAI, Anthropic and similar API keys
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key ids
)
# Text shorter than this, or holding none of these, cannot match VALUE_PATTERNS: checked first,
# as a regular expression search costs microseconds and runs on every captured string.
VALUE_MIN = 13  # the shortest text a pattern matches: a JWT, "eyJ" + 4 + "." + 4 + "."


def suspect(text: str) -> bool:
    """Whether `text` may hold a secret value (then `rules.values` is searched)."""
    return len(text) >= VALUE_MIN and (
        # IA: AKIA, ASIA. "bearer" in any case, as its pattern matches it (a lowered copy costs
        # what two more searches for "earer" and "EARER" did, and misses no "BeArEr").
        "eyJ" in text or "sk-" in text or "IA" in text or "bearer" in text.lower()
    )


@dataclass(frozen=True, slots=True)
class ScrubMatch:
    """What the scrub callback is shown: where the value is (`opto.arg.user.api_key`), the value
    (for a value pattern, the matched text), and the text the pattern matched."""

    path: str
    value: object
    matched: str


@dataclass(frozen=True, slots=True)
class Scrub:
    """Extra name patterns (regular expressions, searched case-insensitively) and a callback that
    may allow a matched value: it returns the value to keep (itself or a shortened form) or None
    to mask it. A callback that raises masks the value."""

    extra_patterns: Sequence[str] = ()
    callback: Callable[[ScrubMatch], object] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.extra_patterns, str):
            raise TypeError("Scrub(extra_patterns=...) takes a sequence of patterns, not one str: use [pattern]")
        for pattern in self.extra_patterns:
            try:
                re.compile(pattern)
            except (re.error, TypeError) as exc:
                raise ValueError(f"Scrub(extra_patterns=...): {pattern!r} is not a regular expression: {exc}") from None
        if self.callback is not None and not callable(self.callback):
            raise TypeError(f"Scrub(callback=...) must be callable, got {type(self.callback).__name__}")


class Rules:
    """The compiled patterns in force; replaced whole by `set_scrub`, so a reader sees one set."""

    __slots__ = ("names", "values", "callback", "plain")

    def __init__(self, scrub: Scrub) -> None:
        patterns = NAME_PATTERNS + tuple(scrub.extra_patterns)
        self.names = re.compile("|".join(f"(?:{p})" for p in patterns), re.I)
        self.values = re.compile("|".join(f"(?:{p})" for p in VALUE_PATTERNS))
        self.callback = scrub.callback
        # Names repeat call after call, so a plain one is judged once; the set stops growing at KNOWN_MAX.
        self.plain: set[str] = set()

    def name_match(self, name: str) -> str | None:
        """The secret-looking part of `name`, or None."""
        if name in self.plain:
            return None
        found = self.names.search(name)
        if found is None:
            if len(self.plain) < KNOWN_MAX:
                self.plain.add(name)
            return None
        return found.group()


rules = Rules(Scrub())


def set_scrub(scrub: Scrub | None) -> None:
    """Put `scrub` in force (None: the defaults) for every capture from now on."""
    global rules
    rules = Rules(scrub or Scrub())
