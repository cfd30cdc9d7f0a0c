"""A `batch` frame decoded and checked in one C pass (msgspec), straight into span records.

The websocket door tries every batch frame here first. The schema is docs/api.md's, as strict as
`SpanRecord.from_json`; a frame it declines goes to `ingest.parse_batch`, which accepts it or
names the bad field, so the error replies come from one validator only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct, field

from .records import MAX_INT, MAX_ITEMS, MAX_MESSAGE, MAX_NAME, MAX_VALUE, Kind, RecordError, SpanRecord, State, StatusCode, check_events, check_links

__all__ = ["Batch", "decode_batch"]

_Name = Annotated[str, Meta(max_length=MAX_NAME)]
# Ids: their length checked here, their digits by one regex over all of a frame's ids at once
# (three regex matches a span cost more than the rest of its decoding).
_Id16 = Annotated[str, Meta(min_length=16, max_length=16)]
_Id32 = Annotated[str, Meta(min_length=32, max_length=32)]
_HEX = re.compile(r"[0-9a-f]*")
_Count = Annotated[int, Meta(ge=0, le=MAX_INT)]
_Int64 = Annotated[int, Meta(ge=-(2**63), le=MAX_INT)]
_Scalar = Annotated[str, Meta(max_length=MAX_VALUE)] | _Int64 | float | bool
_Attributes = Annotated[dict[_Name, _Scalar | Annotated[list[_Scalar], Meta(max_length=MAX_ITEMS)]], Meta(max_length=MAX_ITEMS)]
_Items = Annotated[tuple[Any, ...], Meta(max_length=MAX_ITEMS)]  # events and links: checked by records


class _Status(Struct, gc=False):
    code: StatusCode = "unset"
    message: Annotated[str, Meta(max_length=MAX_MESSAGE)] = ""


class _Scope(Struct, gc=False):
    name: _Name = ""
    version: _Name = ""


class _Span(Struct, gc=False):
    trace_id: _Id32
    span_id: _Id16
    name: _Name
    state: State
    start_ns: _Count
    end_ns: _Count | None = None
    parent_span_id: _Id16 | None = None
    kind: Kind = "internal"
    status: _Status = field(default_factory=_Status)
    attributes: _Attributes = {}
    events: _Items = ()  # a tuple: most spans have none, and an empty tuple costs no allocation
    links: _Items = ()
    resource: _Attributes = {}
    scope: _Scope = field(default_factory=_Scope)


class _Frame(Struct, gc=False):
    type: Literal["batch"]
    seq: _Count
    spans: list[_Span] = []
    metrics: list[Any] = []
    drops: dict[str, Any] = {}
    resource: _Attributes = {}


class Batch(Struct, gc=False):
    """A decoded batch frame: its spans as records; metrics and drops still to be checked."""

    seq: int
    spans: list[SpanRecord]
    metrics: list[Any]
    drops: dict[str, Any]
    resource: dict[str, Any]


_decoder = msgspec.json.Decoder(_Frame)


def decode_batch(data: str | bytes) -> Batch | None:
    """The batch frame in `data` if it is plainly valid, else None (the detailed path decides)."""
    try:
        frame = _decoder.decode(data)
    except msgspec.DecodeError:  # ValidationError included
        return None
    records: list[SpanRecord] = []
    add = records.append
    ids: list[str] = []
    add_id = ids.append
    for s in frame.spans:
        if (s.end_ns is None) is (s.state == "ended"):
            return None
        events: Sequence[dict[str, Any]] = s.events
        links: Sequence[dict[str, Any]] = s.links
        if events or links:
            try:
                events, links = check_events(list(events), "events"), check_links(list(links), "links")
            except RecordError:
                return None
        status, scope = s.status, s.scope
        add_id(s.trace_id)
        add_id(s.span_id)
        if s.parent_span_id is not None:
            add_id(s.parent_span_id)
        add(SpanRecord(
            s.trace_id, s.span_id, s.name, s.start_ns, s.state, s.end_ns, s.parent_span_id, s.kind, status.code, status.message,
            s.attributes, events, links, s.resource, {"name": scope.name, "version": scope.version},
        ))
    if _HEX.fullmatch("".join(ids)) is None:
        return None
    return Batch(frame.seq, records, frame.metrics, frame.drops, frame.resource)
