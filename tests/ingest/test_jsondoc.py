"""jsondoc.loads gives exactly what json.loads gives: the same value, or the same error."""

from __future__ import annotations

import json
import math

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incidentctl.ingest import jsondoc
from incidentctl.ingest.sniff import decode_body
from tests.support.properties import examples


def outcome(decode, data: bytes):
    """(type and repr of the value) or (exception type, message): repr tells 1 from 1.0 and -0.0 from 0.0."""
    try:
        value = decode(data)
    except RecursionError:
        return ("RecursionError",)
    except ValueError as exc:
        return (type(exc).__name__, str(exc))
    return ("value", repr(value))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-10**30, max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)


@settings(max_examples=examples(400))
@given(json_values, st.booleans())
def test_any_document_decodes_as_json_decodes_it(value, ascii_only):
    data = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert outcome(jsondoc.loads, data) == outcome(json.loads, data)


@settings(max_examples=examples(400))
@given(st.binary(max_size=64) | st.text(alphabet='{}[]":,0123456789-+.eE \t\n\\uNaIfitynl\x00\x7f', max_size=40)
       .map(lambda t: t.encode()))
def test_any_bytes_decode_or_fail_as_json_does(data):
    assert outcome(jsondoc.loads, data) == outcome(json.loads, data)


@pytest.mark.parametrize("text", [
    "18446744073709551615",  # u64 max: orjson exact
    "18446744073709551616",  # u64 max + 1: a float in orjson
    "-9223372036854775808",  # i64 min
    "-9223372036854775809",  # one below: a float in orjson
    "-9999999999999999999",  # 19 digits, below i64
    '{"annotations": {"count": 123456789012345678901234567890}}',
    "1.2345678901234567890123",
    "1e400", "-1e400", "NaN", "Infinity", "[1, NaN]",
    '"\\ud800"',  # a lone surrogate: orjson refuses, json takes
    '{"a": 1, "a": 2}',
    "[1,]", "{'a': 1}", "01", "", " ", "[1] 2", '"tab\there"',
])
def test_edge_cases_decode_as_json_decodes_them(text):
    data = text.encode()
    assert outcome(jsondoc.loads, data) == outcome(json.loads, data)


def test_the_long_number_guard_is_what_keeps_big_integers_exact():
    # Without the guard this document would come back with a float (the test would pass vacuously
    # if orjson ever kept big integers exact: then it asks to drop the guard).
    data = b'{"n": 123456789012345678901234567890}'
    assert isinstance(orjson.loads(data)["n"], float)
    assert jsondoc.loads(data)["n"] == 123456789012345678901234567890


def test_utf16_and_bom_bodies_decode_as_json_decodes_them():
    for data in ('{"a": "é"}'.encode("utf-16"), '{"a": "é"}'.encode("utf-32"), b"\xef\xbb\xbf{}",
                 b'"\xff"', b'"\xed\xa0\x80"'):
        assert outcome(jsondoc.loads, data) == outcome(json.loads, data)


def test_text_and_bytearray_decode_as_json_decodes_them():
    for data in ('{"n": 123456789012345678901234567890, "s": "é"}', bytearray(b'{"a": [1, 2.5]}'), "[1,]"):
        assert outcome(jsondoc.loads, data) == outcome(json.loads, data)


def test_deep_nesting_fails_as_json_fails():
    data = b"[" * 100_000 + b"]" * 100_000
    assert outcome(jsondoc.loads, data) == outcome(json.loads, data) == ("RecursionError",)


def test_an_annotation_beyond_64_bits_is_kept_exact_by_the_parser():
    body = json.dumps({"version": "1", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "Big"}, "annotations": {"n": 2**70}}]}).encode()
    doc, label = decode_body(body)
    assert doc["alerts"][0]["annotations"]["n"] == 2**70
    assert label.verdict == "known"


def test_loads_fields_reads_a_records_strings_as_json_does():
    line = json.dumps({"id": 2**70, "received_at": "2026-01-01T00:00:00Z", "body": '{"a": "\\u00e9"}'}).encode()
    fast, exact = jsondoc.loads_fields(line), json.loads(line)
    assert {k: v for k, v in fast.items() if k != "id"} == {k: v for k, v in exact.items() if k != "id"}
    assert math.isclose(fast["id"], exact["id"])
    assert outcome(jsondoc.loads_fields, b"{bad") == outcome(json.loads, b"{bad")
