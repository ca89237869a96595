"""Hostile request bodies for the HTTP services' property tests: what a broken or malicious client sends.

Bytes that are not UTF-8 or not JSON, JSON nested past any parser's patience, numbers no float holds, lone
surrogates and NULs in strings, huge strings, and the services' own shapes with any field of the wrong type.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st

ODD_STRINGS = st.sampled_from(["", "\x00", "\ud800", "a\udfffb", "x" * 300_000, "\u202e\u0000\ufeff", "🙂" * 1000])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=12), ODD_STRINGS)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


def _dumps(value) -> bytes:
    """JSON as a careless client writes it: NaN and Infinity allowed, lone surrogates escaped."""
    return json.dumps(value, allow_nan=True).encode()


def shaped(fields: dict[str, st.SearchStrategy]) -> st.SearchStrategy[bytes]:
    """An object with the service's field names, each value anything at all, some fields missing."""
    return st.fixed_dictionaries({}, optional={name: st.one_of(strategy, VALUES) for name, strategy in fields.items()}
                                 ).map(_dumps)


RAW = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"[" * 100_000, b'{"a":' * 50_000, b"1e999999", b"-0", b'"\\ud800"', b"\xff\xfe{}", b"{}" * 3,
                     b'{"query": ["\\u0000"]}', b'{"query": [' + b'"x",' * 600 + b'"x"]}']),
    VALUES.map(_dumps),
)


def bodies(fields: dict[str, st.SearchStrategy]) -> st.SearchStrategy[bytes]:
    """Raw hostile bytes, or the service's own shape with hostile values."""
    return st.one_of(RAW, shaped(fields))
