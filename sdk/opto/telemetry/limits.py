"""The one table of size limits the SDK and the dashboard share.

The dashboard refuses a span past any of these (that span alone, naming the limit); the SDK's live
exporter cuts every span to fit them before sending (`fit`) and marks what it cut in
`opto.truncated`, so the dashboard never has to refuse a span the SDK produced.
"""

from __future__ import annotations

from typing import Any, Final

from . import semconv

__all__ = [
    "MAX_NAME", "MAX_MESSAGE", "MAX_VALUE", "MAX_ITEMS", "MAX_DEPTH", "MAX_SPAN_BYTES", "MAX_FRAME_BYTES", "cut_value",
    "MAX_BATCH_SPANS", "measure", "fit", "depth_within",
]

MAX_NAME: Final = 1024  # chars in a span, event or attribute name
MAX_MESSAGE: Final = 4096  # chars in a status message
MAX_VALUE: Final = 65_536  # chars in one attribute value (a string, or a string in a list)
MAX_ITEMS: Final = 1024  # attributes, events or links of one span; items of one list value
MAX_DEPTH: Final = 32  # nesting of a metric summary or histogram object
MAX_SPAN_BYTES: Final = 1024 * 1024  # one span record, counted in chars (escapes and UTF-8 can make it
# up to 6x that in bytes: still under the frame limit, so a frame always has room for one)
MAX_FRAME_BYTES: Final = 8 * 1024 * 1024  # one websocket frame
MAX_BATCH_SPANS: Final = 10_000  # span records in one frame

_SCALARS = (str, bool, int, float)


def cut_value(value: Any, limit: int) -> tuple[Any, bool]:
    """`value` with strings cut to `limit` chars and lists to MAX_ITEMS items; whether anything was cut."""
    if isinstance(value, str):
        return (value, False) if len(value) <= limit else (value[:limit], True)
    if isinstance(value, (list, tuple)):
        cut = len(value) > MAX_ITEMS
        items = []
        for item in value[:MAX_ITEMS]:
            item, was = cut_value(item, limit) if isinstance(item, str) else (item, False)
            cut |= was
            items.append(item)
        return items, cut
    return value, False


def _fit_attributes(attrs: dict[str, Any], limit: int, budget: int, where: str, cut: list[str]) -> tuple[dict[str, Any], int]:
    """Attributes cut to the limits, kept in order while they fit `budget` (counted in chars)."""
    out: dict[str, Any] = {}
    for i, (key, value) in enumerate(attrs.items()):
        if i >= MAX_ITEMS:
            cut.append(f"{where}:count")
            break
        if len(key) > MAX_NAME:
            cut.append(f"{where}:name")
            key = key[:MAX_NAME]
        value, was = cut_value(value, limit)
        if was:
            cut.append(f"{where}.{key}")
        size = len(key) + (sum(len(v) if isinstance(v, str) else 24 for v in value) if isinstance(value, list) else len(value) if isinstance(value, str) else 24)
        if size > budget:
            cut.append(f"{where}.{key}:dropped")
            continue
        budget -= size
        out[key] = value
    return out, budget


def measure(record: dict[str, Any], attributes_size: int | None = None) -> int:
    """About how many chars the wire record `record` takes as JSON, or -1 if it is over any limit
    (then `fit` it). The live exporter runs this for every record, passing the size of the span's
    attributes already encoded: no value can be longer than that, so while that size is under the
    limits their values need no look."""
    name, attrs = record["name"], record["attributes"]
    status = record.get("status")
    message = "" if status is None else status["message"]
    if len(name) > MAX_NAME or len(message) > MAX_MESSAGE or len(attrs) > MAX_ITEMS:
        return -1
    size = 256 + len(name) + len(message)
    if attributes_size is None or "events" in record or "links" in record:
        size = _measure_maps(record, size, attributes_size)
        return -1 if size > MAX_SPAN_BYTES else size
    if attributes_size > MAX_NAME and (
        attributes_size > MAX_VALUE  # perhaps only many values, none too long: `fit` will tell
        or max(map(len, attrs)) > MAX_NAME
        or (attributes_size > 2 * MAX_ITEMS and any(isinstance(v, (list, tuple)) and len(v) > MAX_ITEMS for v in attrs.values()))
    ):
        return -1
    return size + attributes_size


def _measure_maps(record: dict[str, Any], size: int, attributes_size: int | None) -> int:
    """`measure` of a record with events or links, or with attributes not yet encoded: every map looked at."""
    events, links = record.get("events", ()), record.get("links", ())
    if len(events) > MAX_ITEMS or len(links) > MAX_ITEMS:
        return -1
    for attrs in _attribute_maps(record):
        if len(attrs) > MAX_ITEMS:
            return -1
        for key, value in attrs.items():
            if type(value) is str:
                n = len(value)
                if n > MAX_VALUE:
                    return -1
            elif isinstance(value, (list, tuple)):
                longest = max((len(x) for x in value if type(x) is str), default=0)
                if len(value) > MAX_ITEMS or longest > MAX_VALUE:
                    return -1
                n = (longest + 24) * len(value)
            else:
                n = 24
            if len(key) > MAX_NAME:
                return -1
            size += len(key) + n + 8
    for event in events:
        if len(event["name"]) > MAX_NAME:
            return -1
        size += len(event["name"])
    return size + 64 * (len(events) + len(links))


def _attribute_maps(record: dict[str, Any]) -> list[dict[str, Any]]:
    maps = [record["attributes"]]
    for key in ("events", "links"):
        maps.extend(item["attributes"] for item in record.get(key, ()))
    return maps


def fit(record: dict[str, Any], limit: int = MAX_VALUE) -> dict[str, Any]:
    """`record` (the wire form of a span) cut to the limits and to MAX_SPAN_BYTES, with the names of
    the cut fields in its `opto.truncated` attribute. Attributes, then events, then links keep their
    order and are kept while they fit."""
    cut: list[str] = []
    budget = MAX_SPAN_BYTES - 64 * 1024  # room for ids, names, the message and the mark
    if len(record["name"]) > MAX_NAME:
        record["name"] = record["name"][:MAX_NAME]
        cut.append("name")
    status = record.get("status")
    if status and len(status["message"]) > MAX_MESSAGE:
        record["status"] = {**status, "message": status["message"][:MAX_MESSAGE]}
        cut.append("status.message")
    attrs, budget = _fit_attributes(record["attributes"], limit, budget, "attributes", cut)
    for key in ("events", "links"):
        items = record.get(key)
        if not items:
            continue
        kept = []
        for i, item in enumerate(items):
            if i >= MAX_ITEMS or budget <= 0:
                cut.append(f"{key}:count")
                break
            item = dict(item)
            if key == "events" and len(item["name"]) > MAX_NAME:
                item["name"] = item["name"][:MAX_NAME]
                cut.append(f"{key}[{i}].name")
            item["attributes"], budget = _fit_attributes(item["attributes"], limit, budget, f"{key}[{i}].attributes", cut)
            budget -= 256 + len(item.get("name", ""))
            kept.append(item)
        record[key] = kept
    if cut:
        if len(attrs) >= MAX_ITEMS:  # room for the mark
            attrs.pop(next(reversed(attrs)))
            cut.append("attributes:count")
        attrs[semconv.TRUNCATED] = cut[:64]
    record["attributes"] = attrs
    return record


def depth_within(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True if `value` (decoded JSON) nests objects and lists at most `limit` deep; walks without recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, (dict, list)):
            continue
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return True
