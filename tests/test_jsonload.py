"""jsonload.loads gives exactly what json.loads gives: the same value, or the same error."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incidentctl import jsonload


def _outcome(decode, data: bytes):
    try:
        return "ok", repr(decode(data))  # repr: NaN compares unequal to itself
    except RecursionError:
        return "RecursionError", None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError: the class must be the same too
        return type(exc), str(exc)


CASES = [
    b'{"receiver":"incidentctl","alerts":[{"labels":{"a":"b"}}]}',  # the usual: orjson decodes it
    b'{"a":1,"a":2}',  # duplicate key: the last wins in both
    b'{"a":1e400}',  # orjson refuses, the standard library reads inf
    b'{"a":NaN,"b":-Infinity}',  # not JSON, accepted by the standard library
    b'\xef\xbb\xbf{"a":1}',  # UTF-8 byte-order mark
    '{"a":"ü"}'.encode("utf-16"),  # another encoding the standard library detects
    b'{"a":123456789012345678901234567890}',  # beyond 64 bits: orjson would give a float
    b'{"a":18446744073709551615,"b":-9223372036854775808}',  # the 64-bit edges
    b'{"a":"\\ud800"}',  # a lone surrogate escape
    b'{"a":"\\ud83d\\ude00","b":"\\u0026"}',  # a surrogate pair, Go's escaping
    b'{"a":"x\ty"}',  # a raw control character: invalid in both
    b'{"a":1.0000000000000002,"b":-0.0,"c":1.5E+2}',
    b"[" * 3000 + b"]" * 3000,  # nested past both limits
    b"[" * 900 + b"]" * 900,  # nested within the standard library's limit, past orjson's
    b"",  # empty
    b"{\"a\":",  # truncated
    b"\xff\xfe\x00garbage",  # not UTF-8
    b" [1, 2] \n",  # whitespace around
]


@pytest.mark.parametrize("data", CASES, ids=range(len(CASES)))
def test_same_value_or_same_error_as_the_standard_library(data):
    assert _outcome(jsonload.loads, data) == _outcome(json.loads, data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(json_values, st.booleans())
def test_any_document_the_standard_library_writes(value, ascii_only):
    data = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert _outcome(jsonload.loads, data) == _outcome(json.loads, data)


def test_the_fast_path_is_taken_for_ordinary_bodies(monkeypatch):
    # Otherwise the module would be a slower json.loads; a body orjson reads never reaches it.
    def refuse(data):
        raise AssertionError("the standard library was called")

    monkeypatch.setattr(jsonload.json, "loads", refuse)
    assert jsonload.loads(b'{"status":"firing","alerts":[{"startsAt":"2026-01-01T00:00:00Z"}]}')["status"] == "firing"
