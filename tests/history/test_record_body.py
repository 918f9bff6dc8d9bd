"""Webhook and action records carry their bodies alike (history/export.py: body_fields,
record_body): the same checks, the same messages, for both kinds of record."""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incidentctl.history.action_records import from_action_record
from incidentctl.history.export import BadRecord, body_fields, from_record, record_body

BODY = b'{"alerts": []}'
SHA = hashlib.sha256(BODY).hexdigest()
WEBHOOK = {"id": 1, "received_at": "2026-01-02T03:04:05.000006Z", "source": "grafana", "remote_addr": None,
           "user_agent": None, "content_type": "application/json"}
ACTION = {"action_id": 7, "received_at": "2026-01-02T03:04:05.000006Z", "door": "api", "incident_id": 3,
          "headers": {}, "state": "pending"}


class Bad(NamedTuple):
    body: dict[str, Any]
    message: str


BAD_BODIES = {
    "both": Bad({"body": "{}", "body_base64": "e30=", "body_sha256": hashlib.sha256(b"{}").hexdigest()},
                "record has both `body` and `body_base64`"),
    "neither": Bad({"body_sha256": SHA}, "record has neither `body` nor `body_base64`"),
    "body not text": Bad({"body": 12, "body_sha256": SHA}, "`body` is not a string"),
    "lone surrogate": Bad({"body": "\ud800", "body_sha256": SHA}, "`body` holds text that is not valid Unicode"),
    "bad base64": Bad({"body_base64": "not base64!", "body_sha256": SHA}, "`body_base64` is not valid base64"),
    "base64 not text": Bad({"body_base64": 5, "body_sha256": SHA}, "`body_base64` is not valid base64"),
    "other body": Bad({"body": "{}", "body_sha256": SHA}, "body does not match `body_sha256`"),
    "no sha256": Bad({"body": BODY.decode()}, "body does not match `body_sha256`"),
}


@pytest.mark.parametrize("case", BAD_BODIES.values(), ids=BAD_BODIES.keys())
@pytest.mark.parametrize("decode, fields", [(from_record, WEBHOOK), (from_action_record, ACTION)],
                         ids=["webhook", "action"])
def test_a_bad_body_is_refused_alike_in_both_kinds_of_record(decode, fields, case):
    with pytest.raises(BadRecord) as caught:
        decode({**fields, **case.body})
    assert str(caught.value) == case.message


@pytest.mark.parametrize("decode, fields", [(from_record, WEBHOOK), (from_action_record, ACTION)],
                         ids=["webhook", "action"])
def test_a_good_body_decodes_in_both_kinds_of_record(decode, fields):
    record = decode({**fields, **body_fields(BODY)})
    assert (record.body if decode is from_record else record.request.body) == BODY


@given(st.binary(max_size=300) | st.text(max_size=100).map(str.encode))
def test_body_fields_round_trip_any_body(body):
    fields = body_fields(body)
    assert fields["body_sha256"] == hashlib.sha256(body).hexdigest()
    # Text when the body is UTF-8, base64 only when it is not.
    assert ("body" in fields) == _is_utf8(body) != ("body_base64" in fields)
    assert record_body(fields) == body


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False
