"""The stored JSON text is json.dumps' (compact, keys sorted, non-ASCII as is) whichever encoder
wrote it: orjson for what it writes alike, json.dumps for the rest."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incidentctl.db.schema import json_text

CASES = {
    "labels": {"severity": "critical", "alertname": "HighLatency", "pod": "web-1"},  # keys sorted
    "non-ASCII and escapes": {"summary": "über 90 % \u2028 \"quoted\" \\ \n\t\x00\x1f\x7f 日本 😀"},
    "nested with numbers": {"reason": "flap", "reopen_count": 3, "ratio": 0.1, "big": 1e16, "none": None},
    "a NaN (orjson would write null)": {"value": float("nan"), "inf": float("inf")},
    "an integer past 64 bits (orjson refuses)": {"n": 10**20},
    "a lone surrogate (orjson refuses)": {"label": "a\udc80b"},
    "keys that are not strings": {1: "one", 2: "two"},
    "the text null in a value": {"value": "null"},
    "a list": ["b", "a", {"z": 1, "a": [True, False]}],
}


@pytest.mark.parametrize("value", CASES.values(), ids=CASES.keys())
def test_the_text_is_json_dumps(value):
    assert json_text(value) == json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


@given(st.dictionaries(st.text(), st.text()))
def test_any_label_set_is_written_as_json_dumps_writes_it(labels):
    assert json_text(labels) == json.dumps(labels, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
