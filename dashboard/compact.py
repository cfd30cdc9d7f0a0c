"""How a span's ids and attributes are stored compactly, and the SQL functions that read them back.

Ids are stored as blobs (8 or 16 bytes, not 16 or 32 hex chars); a span's attribute names are
stored once per distinct set (`attribute_keys`), its values as a JSON array in their order.
`register(db)` gives a connection `opto_attributes(values, keys)`, the attributes as the JSON
object they came as, `opto_holds(terms, key)`, whether a trace's term list (`traces.terms`, a
msgpack array) holds one of the term ids that `term_sets` named `key`, and `unhex(text)`, which
SQLite 3.40 lacks. Standard library and msgspec only: the writer process imports this.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

__all__ = ["attributes_json", "holds", "register", "term_sets"]

_decode = msgspec.json.decode
_encode = msgspec.json.encode


@functools.lru_cache(maxsize=4096)
def _keys(keys: str) -> list[str]:
    """A set of attribute names, parsed once (spans of one function share theirs)."""
    return _decode(keys, type=list[str])


def attributes_json(values: str, keys: str) -> str:
    """The attributes object's JSON text from its stored values and names."""
    return _encode(dict(zip(_keys(keys), _decode(values)))).decode()


_decode_terms = msgspec.msgpack.Decoder(list[int]).decode


# The term-id sets of the queries running, by key: a query names its set with a small int, where
# passing the list itself cost a conversion and a hash of its text on every call (4 µs a trace for
# a search matching 1,000 terms, 0.7 µs by key).
_sets: dict[int, frozenset[int]] = {}
_new_key = itertools.count(1)


@contextlib.contextmanager
def term_sets(lists: Iterable[str]) -> Iterator[list[int]]:
    """Keys for `opto_holds`, one per JSON list of term ids, valid until the block ends."""
    keys: list[int] = []
    try:
        for ids in lists:
            key = next(_new_key)
            _sets[key] = frozenset(_decode(ids, type=list[int]))
            keys.append(key)
        yield keys
    finally:
        for key in keys:
            del _sets[key]


def holds(terms: bytes | None, key: int) -> bool:
    """Whether the term list `terms` holds any of the ids of the set `key` (`term_sets`)."""
    return terms is not None and not _sets[key].isdisjoint(_decode_terms(terms))


def _unhex(text: Any) -> bytes | None:
    """The bytes of a hex id (NULL for NULL or anything that is not hex)."""
    try:
        return bytes.fromhex(text) if isinstance(text, str) else None
    except ValueError:
        return None


def register(db: sqlite3.Connection) -> None:
    """Give `db` the functions `opto_attributes(values, keys)`, `opto_holds(terms, key)` and `unhex(text)`."""
    db.create_function("opto_attributes", 2, attributes_json, deterministic=True)
    db.create_function("opto_holds", 2, holds, deterministic=True)
    db.create_function("unhex", 1, _unhex, deterministic=True)
