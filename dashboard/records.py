"""The one span record that flows from both ingest doors to the store, the live hub and the API.

`SpanRecord.from_json` validates a decoded JSON object against docs/api.md and raises
`RecordError` naming the offending field (`spans[3].span_id: expected 16 lowercase hex chars`).
The websocket door's fast path (`batch.decode_batch`) checks the same rules in one C pass and
hands anything it declines to this validator for the message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import msgspec

from opto.telemetry import semconv
from opto.telemetry.limits import MAX_ITEMS, MAX_MESSAGE, MAX_NAME, MAX_VALUE

__all__ = [
    "Kind", "State", "StatusCode", "KINDS", "STATES", "STATUS_CODES", "MAX_NAME", "MAX_ITEMS", "MAX_MESSAGE", "MAX_VALUE",
    "RecordError", "SpanRecord", "check_id", "outcome_of", "ProcessInfo", "text_field", "int_field", "object_field",
    "list_field", "fit_ints", "check_attributes", "check_events", "check_links",
]

Kind = Literal["internal", "server", "client", "producer", "consumer"]
State = Literal["started", "ended"]
StatusCode = Literal["unset", "ok", "error"]
KINDS = frozenset(get_args(Kind))
STATES = frozenset(get_args(State))
STATUS_CODES = frozenset(get_args(StatusCode))
_HEX = {16: re.compile(r"[0-9a-f]{16}"), 32: re.compile(r"[0-9a-f]{32}")}
_SCALARS = (str, bool, int, float)


class RecordError(ValueError):
    """A span record that does not match the contract; `path` names the field."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def check_id(value: Any, chars: int, path: str) -> str:
    """`value` if it is a `chars`-long lowercase hex id, else RecordError."""
    if not isinstance(value, str) or _HEX[chars].fullmatch(value) is None:
        raise RecordError(path, f"expected {chars} lowercase hex chars, got {_show(value)}")
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def text_field(obj: dict[str, Any], key: str, path: str, *, default: str | None = None, limit: int = MAX_NAME) -> str:
    value = obj.get(key, default)
    if not isinstance(value, str):
        raise RecordError(f"{path}.{key}", "missing" if value is None else f"expected a string, got {_show(value)}")
    if len(value) > limit:
        raise RecordError(f"{path}.{key}", f"longer than {limit} chars")
    return value


MAX_INT = 2**63 - 1  # SQLite's INTEGER: a larger value would fail the whole shared write


def int_field(obj: dict[str, Any], key: str, path: str, *, optional: bool = False) -> int | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise RecordError(
            f"{path}.{key}", "missing" if value is None else f"expected a non-negative int below 2**63, got {_show(value)}"
        )
    return value


def object_field(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RecordError(path, f"expected an object, got {_show(value)}")
    return value


def list_field(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise RecordError(path, f"expected a list, got {_show(value)}")
    if len(value) > MAX_ITEMS:
        raise RecordError(path, f"more than {MAX_ITEMS} items")
    return value


def fit_ints(value: Any) -> Any:
    """`value` (JSON data nested within MAX_DEPTH) with every int past 64 bits made a float, as
    attribute values are: such an int would fail the whole shared write, not just its own item."""
    if type(value) is int:
        return value if -MAX_INT - 1 <= value <= MAX_INT else float(value)
    if isinstance(value, list):
        return [fit_ints(v) for v in value]
    if isinstance(value, dict):
        return {k: fit_ints(v) for k, v in value.items()}
    return value


def check_attributes(value: Any, path: str) -> dict[str, Any]:
    """`value` if it is an attribute map within the limits, else RecordError. A null value (how JSON
    carries a NaN or infinite float) is left out."""
    attrs = object_field(value, path)
    if len(attrs) > MAX_ITEMS:
        raise RecordError(path, f"more than {MAX_ITEMS} attributes")
    if None in attrs.values():
        attrs = {k: v for k, v in attrs.items() if v is not None}
    for key, item in attrs.items():
        if len(key) > MAX_NAME:
            raise RecordError(path, f"attribute name longer than {MAX_NAME} chars")
        if isinstance(item, _SCALARS):
            if type(item) is int and not -MAX_INT - 1 <= item <= MAX_INT:
                attrs[key] = float(item)  # past 64 bits, as the quick path reads it (OTLP has no such int)
            elif type(item) is str and len(item) > MAX_VALUE:
                raise RecordError(f"{path}.{key}", f"value longer than {MAX_VALUE} chars")
            continue
        if isinstance(item, list) and all(isinstance(x, _SCALARS) for x in item):
            if len(item) > MAX_ITEMS or any(type(x) is str and len(x) > MAX_VALUE for x in item):
                raise RecordError(f"{path}.{key}", f"list of more than {MAX_ITEMS} items, or with a string longer than {MAX_VALUE} chars")
            attrs[key] = [float(x) if type(x) is int and not -MAX_INT - 1 <= x <= MAX_INT else x for x in item]
            continue
        raise RecordError(f"{path}.{key}", f"expected a string, number, bool or list of them, got {_show(item)}")
    return attrs


def check_events(value: Any, path: str) -> list[dict[str, Any]]:
    """`value` if it is a list of span events (name, time_ns, attributes), else RecordError."""
    events = list_field(value, path)
    for i, event in enumerate(events):
        where = f"{path}[{i}]"
        event = object_field(event, where)
        text_field(event, "name", where)
        int_field(event, "time_ns", where)
        event["attributes"] = check_attributes(event.get("attributes", {}), f"{where}.attributes")
    return events


def check_links(value: Any, path: str) -> list[dict[str, Any]]:
    """`value` if it is a list of span links (trace_id, span_id, attributes), else RecordError."""
    links = list_field(value, path)
    for i, link in enumerate(links):
        where = f"{path}[{i}]"
        link = object_field(link, where)
        check_id(link.get("trace_id"), 32, f"{where}.trace_id")
        check_id(link.get("span_id"), 16, f"{where}.span_id")
        link["attributes"] = check_attributes(link.get("attributes", {}), f"{where}.attributes")
    return links


def outcome_of(attributes: dict[str, Any], status_code: str) -> str:
    """`opto.outcome` when set, else `error` for an error status, else `ok`."""
    outcome = attributes.get(semconv.OUTCOME)
    if isinstance(outcome, str) and outcome in semconv.OUTCOMES:
        return outcome
    return semconv.OUTCOME_ERROR if status_code == "error" else semconv.OUTCOME_OK


class SpanRecord(msgspec.Struct, gc=False):
    """One span, started or ended, as docs/api.md describes it; `process_id` is set by ingest.

    A msgspec Struct not tracked by the garbage collector (it holds JSON values, never a cycle):
    ingest makes tens of thousands a second, and as dataclasses their collection cost ~2 us each.
    """

    trace_id: str
    span_id: str
    name: str
    start_ns: int
    state: str = "ended"
    end_ns: int | None = None
    parent_span_id: str | None = None
    kind: str = "internal"
    status_code: str = "unset"
    status_message: str = ""
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    events: Sequence[dict[str, Any]] = ()  # an empty tuple, not a list: no allocation, nothing for the GC to track
    links: Sequence[dict[str, Any]] = ()
    resource: dict[str, Any] = msgspec.field(default_factory=dict)
    scope: dict[str, Any] = msgspec.field(default_factory=dict)
    process_id: str | None = None

    @classmethod
    def from_json(cls, obj: Any, path: str = "span") -> SpanRecord:
        """Validate a decoded JSON span record; RecordError names the first bad field."""
        obj = object_field(obj, path)
        state = obj.get("state")
        if not isinstance(state, str) or state not in STATES:  # a dict or list would not even hash
            raise RecordError(f"{path}.state", f"expected 'started' or 'ended', got {_show(state)}")
        start_ns = int_field(obj, "start_ns", path)
        end_ns = int_field(obj, "end_ns", path, optional=True)
        if state == "ended" and end_ns is None:
            raise RecordError(f"{path}.end_ns", "an ended span needs end_ns")
        if state == "started" and end_ns is not None:
            raise RecordError(f"{path}.end_ns", "a started span has end_ns null")
        parent = obj.get("parent_span_id")
        kind = obj.get("kind", "internal")
        if not isinstance(kind, str) or kind not in KINDS:  # a dict or list would not even hash
            raise RecordError(f"{path}.kind", f"expected one of {sorted(KINDS)}, got {_show(kind)}")
        status = object_field(obj.get("status", {}), f"{path}.status")
        code = status.get("code", "unset")
        if not isinstance(code, str) or code not in STATUS_CODES:  # a dict or list would not even hash
            raise RecordError(f"{path}.status.code", f"expected one of {sorted(STATUS_CODES)}, got {_show(code)}")
        scope = object_field(obj.get("scope", {}), f"{path}.scope")
        return cls(
            trace_id=check_id(obj.get("trace_id"), 32, f"{path}.trace_id"),
            span_id=check_id(obj.get("span_id"), 16, f"{path}.span_id"),
            parent_span_id=None if parent is None else check_id(parent, 16, f"{path}.parent_span_id"),
            name=text_field(obj, "name", path),
            kind=kind,
            state=state,
            start_ns=start_ns,  # type: ignore[arg-type]
            end_ns=end_ns,
            status_code=code,
            status_message=text_field(status, "message", f"{path}.status", default="", limit=MAX_MESSAGE),
            attributes=check_attributes(obj.get("attributes", {}), f"{path}.attributes"),
            events=check_events(obj.get("events", []), f"{path}.events"),
            links=check_links(obj.get("links", []), f"{path}.links"),
            resource=check_attributes(obj.get("resource", {}), f"{path}.resource"),
            scope={"name": text_field(scope, "name", f"{path}.scope", default=""), "version": text_field(scope, "version", f"{path}.scope", default="")},
        )

    @property
    def outcome(self) -> str | None:
        """The call's outcome, None while in flight."""
        return None if self.state == "started" else outcome_of(self.attributes, self.status_code)

    @property
    def service(self) -> str | None:
        value = self.resource.get(semconv.SERVICE_NAME)
        return value if isinstance(value, str) else None

    def to_json(self) -> dict[str, Any]:
        """The wire form of docs/api.md, plus the API's derived fields."""
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "name": self.name,
            "kind": self.kind,
            "state": self.state,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "status": {"code": self.status_code, "message": self.status_message},
            "attributes": self.attributes,
            "events": list(self.events),
            "links": list(self.links),
            "resource": self.resource,
            "scope": self.scope,
            "duration_ms": None if self.end_ns is None else (self.end_ns - self.start_ns) / 1e6,
            "outcome": self.outcome,
            "process_id": self.process_id,
            "service": self.service,
        }


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """A connected SDK process, from its `hello` frame."""

    id: str
    service: str
    pid: int
    host: str
    sdk: str
    started_ns: int

    @classmethod
    def from_json(cls, obj: Any, path: str = "process") -> ProcessInfo:
        obj = object_field(obj, path)
        return cls(
            id=check_id(obj.get("id"), 32, f"{path}.id"),
            service=text_field(obj, "service", path),
            pid=int_field(obj, "pid", path),  # type: ignore[arg-type]
            host=text_field(obj, "host", path, default=""),
            sdk=text_field(obj, "sdk", path, default=""),
            started_ns=int_field(obj, "started_ns", path),  # type: ignore[arg-type]
        )

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "service": self.service, "pid": self.pid, "host": self.host, "sdk": self.sdk, "started_ns": self.started_ns}
