"""Scrubbing: secret-looking names (arguments, dict keys, dataclass and pydantic fields) and
secret-looking values (bearer tokens, JWTs, sk- keys, AWS keys) are masked; configure(scrub=...)
extends the rules; self and cls are not captured."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pydantic
import pytest
from hypothesis import given, strategies as st

import opto
from opto._core.capture import MASK, Remembered, looks_secret, safe_repr
from opto.telemetry import scrub, semconv

ARG = semconv.ARG_PREFIX


@pytest.fixture(autouse=True)
def _default_rules() -> Iterator[None]:
    yield
    scrub.set_scrub(None)


@pytest.mark.parametrize("name", [
    "password", "passwd", "api_key", "openai_key", "apiKey", "access_token", "client_secret", "auth", "Authorization",
    "bearer", "cookie", "set-cookie", "credentials", "session", "sessionid", "X-Auth-Token", "private_key", "csrf_token",
    "jwt", "ssn", "credit_card",
])
def test_a_secret_looking_name_is_secret(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize("name", ["user", "query", "author", "authors", "author_name", "prompt", "model", "count"])
def test_an_ordinary_name_is_not_secret(name: str) -> None:
    assert not looks_secret(name)


@pytest.mark.parametrize("secret", [
    "Bearer abcdefghijklmnop1234",
    "bEaReR abcdefghijklmnop1234",  # the pattern ignores case: so must the check that comes before it
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
    "AKIAIOSFODNN7EXAMPLE",
])
def test_a_secret_looking_value_is_masked_wherever_it_is(secret: str) -> None:
    """In a plain string, inside text, in a list, under a plain dict key, in an object's repr."""
    class Holder:
        def __repr__(self) -> str:
            return f"Holder(header={secret!r})"

    for value in (secret, f"header: {secret} end", [secret], {"note": secret}, Holder()):
        text = safe_repr(value)
        assert secret not in text and MASK in text, text
    assert "header: " in safe_repr(f"header: {secret} end")  # only the secret part is masked


@given(st.tuples(st.text(max_size=20), st.sampled_from(scrub.VALUE_PATTERNS).flatmap(st.from_regex), st.text(max_size=20)))
def test_the_quick_check_lets_every_secret_value_through_to_the_patterns(parts: tuple[str, str, str]) -> None:
    """`suspect` runs before the patterns, on every captured string: it may say yes to text the
    patterns do not match, never no to text they do."""
    text = "".join(parts)
    found = scrub.rules.values.search(text)
    if found is not None:
        assert scrub.suspect(text)
        # An argument or result slot has the check inlined: it must mask the same texts.
        out: dict[str, str] = {}
        Remembered("k").capture(out, text, 1000)
        assert MASK in out["k"] and found.group() not in out["k"]


def test_an_ordinary_value_is_kept() -> None:
    for value in ("skip the rest", "a bearer of news", "AKIA", "eyJ"):
        assert safe_repr(value) == repr(value)


@dataclasses.dataclass
class Settings:
    model: str
    api_key: str


class Login(pydantic.BaseModel):
    user: str
    password: str


@pytest.mark.parametrize("value, kept, hidden", [
    (Settings("gpt", "hunter2-key"), "model='gpt'", "hunter2-key"),
    (Login(user="ann", password="hunter2"), "user='ann'", "hunter2"),
    ({"settings": Settings("gpt", "hunter2-key")}, "model='gpt'", "hunter2-key"),
], ids=["dataclass", "pydantic", "nested"])
def test_secret_fields_of_records_are_masked(value: object, kept: str, hidden: str) -> None:
    text = safe_repr(value)
    assert kept in text and hidden not in text and MASK in text, text


async def test_arguments_named_like_secrets_are_masked_and_self_is_not_captured(spans) -> None:
    class Service:
        @opto.trace
        async def call(self, prompt: str, openai_key: str, bearer: str, auth: str, settings: Settings) -> str:
            return "ok"

        @classmethod
        @opto.trace
        def build(cls, name: str) -> str:
            return name

    await Service().call("hi", "k1", "t1", "a1", settings=Settings("gpt", "hunter2-key"))
    Service.build("x")
    attrs_ = spans.one(Service.call.__qualname__).attributes
    assert attrs_[ARG + "prompt"] == "'hi'"
    assert attrs_[ARG + "openai_key"] == attrs_[ARG + "bearer"] == attrs_[ARG + "auth"] == MASK
    assert "hunter2-key" not in attrs_[ARG + "settings"]
    assert ARG + "self" not in attrs_
    build = spans.of("build")[0].attributes
    assert ARG + "cls" not in build and build[ARG + "name"] == "'x'"


def test_a_plain_function_may_still_take_an_argument_named_self_later(spans) -> None:
    """Only a first parameter named self or cls is skipped."""
    @opto.trace
    def f(x: int, self: int) -> int:
        return x + self

    f(1, 2)
    assert spans.one(f.__qualname__).attributes[ARG + "self"] == "2"


async def test_configure_adds_patterns_and_a_callback_may_allow_a_value(spans) -> None:
    seen: list[opto.ScrubMatch] = []

    def allow_test_keys(match: opto.ScrubMatch) -> object:
        seen.append(match)
        return match.value if match.value == "test-only" else None

    opto.configure(scrub=opto.Scrub(extra_patterns=[r"tenant"], callback=allow_test_keys))

    @opto.trace
    def call(tenant_id: str, api_key: str, headers: dict[str, str]) -> None:
        return None

    call("t-1", "test-only", {"cookie": "c", "nested": {"password": "p"}})
    attrs_ = spans.one(call.__qualname__).attributes
    assert attrs_[ARG + "tenant_id"] == MASK
    assert attrs_[ARG + "api_key"] == "'test-only'"
    assert attrs_[ARG + "headers"] == "{'cookie': [masked], 'nested': {'password': [masked]}}"
    assert {m.path for m in seen} == {
        ARG + "tenant_id", ARG + "api_key", ARG + "headers.cookie", ARG + "headers.nested.password",
    }


def test_a_callback_that_raises_masks_and_the_call_goes_on(spans) -> None:
    def broken(match: opto.ScrubMatch) -> object:
        raise RuntimeError("bug in the callback")

    opto.configure(scrub=opto.Scrub(callback=broken))

    @opto.trace
    def call(token: str) -> int:
        return 1

    assert call("t") == 1
    attrs_ = spans.one(call.__qualname__).attributes
    assert attrs_[ARG + "token"] == MASK and "scrub callback failed" in attrs_[semconv.CAPTURE_ERROR]


def test_a_function_decorated_before_configure_takes_the_new_rules(spans) -> None:
    @opto.trace
    def call(tenant: str) -> None:
        return None

    call("a")
    opto.configure(scrub=opto.Scrub(extra_patterns=["tenant"]))
    call("b")
    assert [s.attributes[ARG + "tenant"] for s in spans.named(call.__qualname__)] == ["'a'", MASK]


@pytest.mark.parametrize("bad, error", [
    ("tenant", TypeError), (["("], ValueError), ([1], ValueError),
])
def test_bad_extra_patterns_are_refused(bad: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="extra_patterns"):
        opto.Scrub(extra_patterns=bad)  # type: ignore[arg-type]


def test_configure_refuses_a_scrub_that_is_not_a_scrub() -> None:
    with pytest.raises(TypeError, match="opto.Scrub"):
        opto.configure(scrub=["tenant"])  # type: ignore[arg-type]
